"""Softened training crops (``--soften``): a live camera's or an upscaled clip's picture, not a sharp photo's."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from training.cli import _train_config, build_parser, run
from training.images import SOFTEST, random_crop, sample_crops, softened
from training.run import RunConfig


def _fine_energy(picture: np.ndarray | torch.Tensor) -> float:
    """Mean squared difference between horizontal neighbours of an [H,W,3] picture: the finest detail it holds."""
    return float(np.mean(np.diff(np.asarray(picture, dtype=np.float64), axis=1) ** 2))


def test_softening_takes_fine_detail_and_keeps_the_size_and_smooth_shading() -> None:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8))
    soft = softened(noise, 3.0)
    assert soft.size == noise.size
    assert _fine_energy(np.asarray(soft)) < 0.2 * _fine_energy(np.asarray(noise))
    ramp = Image.fromarray(np.tile(np.linspace(0, 255, 80, dtype=np.uint8)[None, :, None], (64, 1, 3)))
    inner = (slice(8, -8), slice(8, -8))
    assert np.abs(np.asarray(softened(ramp, 3.0), np.float64)[inner] - np.asarray(ramp, np.float64)[inner]).max() < 3
    with pytest.raises(ValueError, match=">= 1"):
        softened(noise, 0.5)


def test_a_softened_crop_is_the_same_crop_with_less_detail() -> None:
    photo = Image.fromarray(np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8))
    sharp = random_crop(photo, 48, random.Random(3))
    soft = random_crop(photo, 48, random.Random(3), soften=1.0)
    assert sharp.shape == soft.shape == (1, 3, 48, 48)
    assert _fine_energy(soft[0].permute(1, 2, 0)) < 0.5 * _fine_energy(sharp[0].permute(1, 2, 0))
    # the same place in the photo: the softened crop is close to the sharp one blurred, not another crop
    assert float((soft - sharp).abs().mean()) < float((sharp - sharp.flip(-1)).abs().mean())
    assert 1.5 < SOFTEST


def test_the_share_softened_follows_the_option(picture_dirs: tuple[Path, list[Path]]) -> None:
    content, _ = picture_dirs
    files = sorted(content.glob("*.png"))
    sharp = sample_crops(files, 40, 32, random.Random(5), content)
    half = sample_crops(files, 40, 32, random.Random(5), content, soften=0.5)
    energies = [_fine_energy(c.permute(1, 2, 0)) for c in sharp], [_fine_energy(c.permute(1, 2, 0)) for c in half]
    assert np.mean(energies[1]) < 0.9 * np.mean(energies[0])
    with pytest.raises(ValueError, match="share of the crops"):
        RunConfig(content_dir=content, out_dir=content, soften=1.5)


def test_the_cli_passes_soften_and_refuses_a_bad_share(picture_dirs: tuple[Path, list[Path]], tmp_path: Path) -> None:
    content, styles = picture_dirs
    args = ["train", "--content", str(content), "--styles", str(styles[0]), "--out", str(tmp_path / "run")]
    assert run([*args, "--soften", "-0.1", "--steps", "1"]) == 2
    assert _train_config(build_parser().parse_args([*args, "--soften", "0.5"]), new_styles_only=False).soften == 0.5
