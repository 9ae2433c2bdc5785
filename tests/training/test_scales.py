"""Training at several scales (``--also-at SCENE:STYLE``): the steps take the scales in turn, each step's
photos are scaled for its scale and its style loss is measured against the paintings at that scale."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from training.checkpoint import load_checkpoint
from training.cli import scale_pair
from training.train import TrainConfig, Trainer


def config(content: Path, styles: list[Path], out: Path, **kw: object) -> TrainConfig:
    base: dict[str, object] = dict(
        content_dir=content,
        style_images=tuple(styles),
        out_dir=out,
        steps=6,
        batch_size=2,
        crop_size=32,
        lr=1e-3,
        style_weight=1e-5,
        style_size=64,
        scene_size=48,
        checkpoint_every=5,
        preview_every=1000,
    )
    return TrainConfig(**(base | kw))  # type: ignore[arg-type]


def test_steps_take_the_scales_in_turn_with_their_own_targets(
    picture_dirs: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    content, styles = picture_dirs
    trainer = Trainer(config(content, styles[:1], tmp_path / "run", also_at=((80, 32),)))
    main, other = trainer.targets
    assert main.grams.keys() == other.grams.keys()
    assert not torch.allclose(main.grams["relu1_1"], other.grams["relu1_1"])  # the painting at 64 vs 32 px
    for tap in other.grams:  # the second scale's targets made unreachable: its steps must show it
        other.grams[tap] = other.grams[tap] * 1e3
    scenes: list[int | None] = []
    crops = trainer.start.crops
    trainer.start.crops = lambda cfg, scene=None: (scenes.append(scene), crops(cfg, scene))[1]  # type: ignore[method-assign]
    styles_seen = [trainer.train_step()["style"] for _ in range(6)]
    assert scenes == [48, 80] * 3
    assert min(styles_seen[1::2]) > 100 * max(styles_seen[0::2])


def test_the_scales_are_kept_in_the_checkpoint(picture_dirs: tuple[Path, list[Path]], tmp_path: Path) -> None:
    content, styles = picture_dirs
    Trainer(
        config(content, styles[:1], tmp_path / "run", steps=2, checkpoint_every=2, also_at=((80, 32), (0, 48)))
    ).run()
    saved = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["train_config"]
    assert saved["also_at"] == [[80, 32], [0, 48]] and saved["scene_size"] == 48


def test_bad_scales_are_refused(picture_dirs: tuple[Path, list[Path]], tmp_path: Path) -> None:
    content, styles = picture_dirs
    assert scale_pair("256:256") == (256, 256)
    for text in ("256", "a:b", "256:", "-1:256"):
        with pytest.raises(argparse.ArgumentTypeError, match="SCENE:STYLE"):
            scale_pair(text)
    with pytest.raises(ValueError, match="style sizes >= 16"):
        config(content, styles, tmp_path, also_at=((256, 8),))
