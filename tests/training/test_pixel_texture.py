"""Efros-Leung and Wei-Levoy on raw pixels: periodic samples continue with their period, no invented colours,
clear CLI errors for bad sizes and samples too small for the neighbourhood."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.cli import run
from training.optimize.pixel_texture import PixelTextureConfig, efros_leung, wei_levoy


def stripes(size: int = 48, width: int = 4) -> np.ndarray:
    x = np.arange(size)[None, :].repeat(size, 0)
    rgb = np.zeros((size, size, 3), np.uint8)
    rgb[(x // width) % 2 == 0] = (200, 40, 90)
    rgb[(x // width) % 2 == 1] = (20, 180, 230)
    return rgb


def stripe_widths(out: np.ndarray, row: int) -> np.ndarray:
    light = out[row, :, 0] > 100
    edges = np.flatnonzero(np.diff(light.astype(int)) != 0)
    return np.diff(edges)


def colours(image: np.ndarray) -> set[tuple[int, ...]]:
    return {tuple(int(v) for v in c) for c in image.reshape(-1, 3)}


def test_efros_leung_continues_stripes_with_their_period_and_copies_colours() -> None:
    sample = stripes()
    out = efros_leung(sample, PixelTextureConfig(size=64, window=9))
    assert out.shape == (64, 64, 3)
    assert colours(out) <= colours(sample)  # copied, never invented
    for row in (5, 32, 60):
        assert set(stripe_widths(out, row).tolist()) == {4}, stripe_widths(out, row)


def test_wei_levoy_copies_colours_and_mostly_keeps_the_period() -> None:
    sample = stripes(64)
    out = wei_levoy(sample, PixelTextureConfig(size=64, window=7, levels=2))
    assert out.shape == (64, 64, 3)
    assert colours(out) <= colours(sample)
    widths = np.concatenate([stripe_widths(out, row) for row in (8, 40)])
    # a causal, greedy method: the period holds with a few defects (the lecture's "as long as it is simple")
    assert np.median(widths) == 4 and np.mean(np.abs(widths - 4) <= 1) >= 0.75, widths
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    assert stripe_widths(noise, 8).size > 20  # the check above would fail on an unstructured picture


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--size", "4"], "size must be in"),
        (["--window", "4"], "must be odd"),
    ],
)
def test_cli_bad_values_are_one_line_errors(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.png"
    Image.fromarray(stripes()).save(path)
    code = run(["texture", "--method", "efros-leung", "--texture", str(path), "--out", str(tmp_path), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "\n" not in err


def test_a_sample_smaller_than_the_neighbourhood_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tiny.png"
    Image.fromarray(stripes(8)).save(path)
    code = run(["texture", "--method", "wei-levoy", "--texture", str(path), "--out", str(tmp_path), "--size", "32"])
    assert code == 2 and "too small" in capsys.readouterr().err


def test_cli_writes_the_png(tmp_path: Path) -> None:
    path = tmp_path / "s.png"
    Image.fromarray(stripes()).save(path)
    assert (
        run(
            [
                "texture",
                "--method",
                "efros-leung",
                "--texture",
                str(path),
                "--out",
                str(tmp_path / "o"),
                "--size",
                "32",
                "--window",
                "7",
            ]
        )
        == 0
    )
    out = np.asarray(Image.open(tmp_path / "o" / "texture_s_efros-leung.png"))
    assert out.shape == (32, 32, 3) and colours(out) <= colours(stripes())
