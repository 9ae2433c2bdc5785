"""``livestyle-train gatys|texture|invert|dream|quality`` as a user runs them: files out, one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.cli import run


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("livestyle-train: error:"), err
    return err[0]


@pytest.fixture
def pictures(picture_dirs: tuple[Path, list[Path]]) -> tuple[Path, Path]:
    content, styles = picture_dirs
    return content / "photo_0.png", styles[0]


def test_bad_input_is_one_line_and_exit_2(
    pictures: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo, style = pictures
    not_image = tmp_path / "x.jpg"
    not_image.write_text("hello")
    out = ["--out", str(tmp_path / "o"), "--quiet"]
    cases = {
        "not a readable image": ["gatys", "--content", str(not_image), "--styles", str(style), *out],
        "no such file": ["texture", "--texture", str(tmp_path / "missing.png"), *out],
        "valid layers: conv1_1, relu1_1": ["invert", "--image", str(photo), "--layers", "relu9_9", *out],
        "unknown layer fc7": ["dream", "--image", str(photo), "--layers", "fc7", *out],
        "adam or sgd": ["gatys", "--content", str(photo), "--styles", str(style), "--jitter", "4", *out],
        "blend weight per style": ["gatys", "--content", str(photo), "--styles", str(style), "--blend", "1", "2", *out],
        "GiB": ["gatys", "--content", str(photo), "--styles", str(style), "--size", "100000", *out],
        "not a readable image ": [
            "quality",
            "--fast",
            str(not_image),
            "--gatys",
            str(photo),
            "--content",
            str(photo),
            "--style",
            str(style),
        ],
    }
    for expected, argv in cases.items():
        assert run(argv) == 2, argv
        assert expected.strip() in one_error_line(capsys), argv
    assert not (tmp_path / "o").exists()  # nothing started, nothing written


@pytest.mark.slow
def test_each_tool_writes_pngs_and_a_contact_sheet(pictures: tuple[Path, Path], tmp_path: Path) -> None:
    photo, style = pictures
    flags = ["--size", "32", "--iterations", "2", "--quiet"]
    assert (
        run(
            [
                "gatys",
                "--content",
                str(photo),
                "--styles",
                str(style),
                str(style),
                "--blend",
                "3",
                "1",
                "--colour",
                "luminance",
                "--octaves",
                "1",
                "--snapshot-every",
                "1",
                "--dream-layer",
                "relu4_1",
                "--dream-weight",
                "1",
                "--out",
                str(tmp_path / "g"),
                *flags,
            ]
        )
        == 0
    )
    assert (
        run(
            ["texture", "--texture", str(style), "--layers", "relu1_1", "relu2_1", "--out", str(tmp_path / "t"), *flags]
        )
        == 0
    )
    assert (
        run(["invert", "--image", str(photo), "--layers", "relu2_1", "relu3_1", "--out", str(tmp_path / "i"), *flags])
        == 0
    )
    assert run(["dream", "--octaves", "2", "--out", str(tmp_path / "d"), *flags]) == 0
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert {
        "g/photo_0_stripes+stripes.png",
        "g/photo_0_stripes+stripes_sheet.png",
        "g/photo_0_stripes+stripes.gif",
        "g/snapshots/photo_0_stripes+stripes/step_00002.png",
        "t/texture_stripes_relu1_1.png",
        "t/texture_stripes_relu1_1-to-relu2_1.png",
        "t/texture_stripes_sheet.png",
        "i/invert_photo_0_relu2_1.png",
        "i/invert_photo_0_relu3_1.png",
        "i/invert_photo_0_sheet.png",
        "d/dream_noise_relu4_2.png",
        "d/dream_noise_relu4_2_sheet.png",
    } <= written
    assert not [w for w in written if w.endswith(".tmp")]
    with Image.open(tmp_path / "g" / "photo_0_stripes+stripes.png") as img:
        assert img.size == (38, 32)  # 96x80 photo, shorter side 32
    assert (
        run(
            [
                "gatys",
                "--content",
                str(photo),
                "--styles",
                str(style),
                "--square",
                "--octaves",
                "1",
                "--out",
                str(tmp_path / "sq"),
                *flags,
            ]
        )
        == 0
    )
    with Image.open(tmp_path / "sq" / "photo_0_stripes.png") as img:
        assert img.size == (32, 32)


@pytest.mark.slow
def test_quality_prints_both_losses_for_both_images(
    pictures: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo, style = pictures
    rng = np.random.default_rng(0)
    fast = tmp_path / "fast.png"
    Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(fast)
    assert (
        run(["quality", "--fast", str(fast), "--gatys", str(photo), "--content", str(photo), "--style", str(style)])
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["style", "loss", "content", "loss"]
    fast_row, gatys_row = lines[1].split(), lines[2].split()
    assert fast_row[0] == "fast" and gatys_row[0] == "gatys" and float(gatys_row[2]) == 0.0
    assert float(fast_row[2]) > 0 and lines[3].startswith("fast/gatys")
