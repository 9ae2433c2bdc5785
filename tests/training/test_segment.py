"""Segmentation from saliency: GrabCut seeded by a classifier's gradient saliency finds the object, no labels."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from training.cli import run
from training.interpret.segment import SegmentConfig, compose_scene, iou, segment, silhouette


class RedDetector(nn.Module):
    """A hand-built two-class model whose only evidence for class 0 is red: relu(r - g - b) averaged."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        r, g, b = image[:, 0], image[:, 1], image[:, 2]
        red = torch.relu(r - 0.5 * g - 0.5 * b - 0.2).mean(dim=(1, 2))
        return torch.stack([10 * red, torch.zeros_like(red)], dim=1)


def one_object_scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = silhouette(96, 128, random.Random(seed), area=0.2)
    ground = np.clip(rng.normal(128, 8, (96, 128, 3)), 0, 255)  # a flat, slightly noisy grey wall
    thing = np.clip(rng.normal((200, 40, 50), 20, (96, 128, 3)), 0, 255)  # a textured red object
    return np.where(truth[..., None], thing, ground).astype(np.uint8), truth


def test_the_object_is_cut_out_from_its_class_evidence_alone() -> None:
    rgb, truth = one_object_scene()
    found = segment(RedDetector(), rgb, SegmentConfig())
    assert found.target == 0  # the top class: the only one with evidence
    assert iou(found.mask, truth) >= 0.8, iou(found.mask, truth)
    assert found.saliency[truth].mean() > 3 * found.saliency[~truth].mean()


def test_grabcut_beats_the_thresholded_saliency_on_a_soft_map() -> None:
    """Saliency is strongest inside the object but weak at its rim: GrabCut follows the colour edge."""
    rgb, truth = one_object_scene(1)
    found = segment(RedDetector(), rgb, SegmentConfig(smoothing=0.08))
    assert iou(found.mask, truth) > iou(found.baseline, truth)


def test_a_composed_scene_keeps_the_background_outside_its_mask(tmp_path: Path) -> None:
    y, x = np.mgrid[0:120, 0:160]
    Image.fromarray(np.stack([x, y, x * 0], -1).astype(np.uint8)).save(tmp_path / "ground.png")
    Image.fromarray(np.full((80, 80, 3), (250, 10, 10), np.uint8)).save(tmp_path / "thing.png")
    scene, truth = compose_scene(tmp_path / "thing.png", tmp_path / "ground.png", random.Random(3), (60, 80))
    assert scene.shape == (60, 80, 3) and 0.08 < truth.mean() < 0.4
    assert (scene[truth] == (250, 10, 10)).all()
    assert not (scene[~truth] == (250, 10, 10)).all(axis=-1).any()


def test_cli_errors_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.jpg").write_text("not a picture")
    assert run(["segment", str(tmp_path / "notes.jpg"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a readable image" in err and len(err.splitlines()) == 1
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "ok.png")
    assert (
        run(["segment", str(tmp_path / "ok.png"), "--out", str(tmp_path / "out"), "--foreground-quantile", "0.2"]) == 2
    )
    assert "quantile" in capsys.readouterr().err
    assert run(["segment", str(tmp_path / "ok.png"), "--out", str(tmp_path / "out"), "--target", "1000"]) == 2
    assert "--target" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_writes_mask_cutout_and_saliency_with_the_bundled_classifier(tmp_path: Path) -> None:
    rgb, _ = one_object_scene(2)
    Image.fromarray(rgb).save(tmp_path / "thing.png")
    assert run(["segment", str(tmp_path / "thing.png"), "--out", str(tmp_path / "out")]) == 0
    mask = np.asarray(Image.open(tmp_path / "out" / "thing_mask.png"))
    cut = Image.open(tmp_path / "out" / "thing_cutout.png")
    assert mask.shape == (96, 128) and set(np.unique(mask)) <= {0, 255} and 0 < (mask > 0).mean() < 1
    assert cut.mode == "RGBA" and (np.asarray(cut)[..., 3] == mask).all()
    assert Image.open(tmp_path / "out" / "thing_saliency.png").size == (128, 96)
    assert not list((tmp_path / "out").glob("*.tmp"))
