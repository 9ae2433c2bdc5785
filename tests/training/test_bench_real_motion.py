"""Table 15's parts: the clips it finds, a real clip brought to the live size without a shake, the verdicts."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from training.bench.real_motion import STILL, Clip, default_clips, real_motion_table
from training.bench.steady import SteadyResult, handheld_clip
from training.quality import LIVE_HEIGHT, LIVE_WIDTH


def test_the_clips_are_the_real_ones_the_shakes_and_the_tripod(tmp_path: Path) -> None:
    video = tmp_path / "video"
    video.mkdir()
    for name in ("bikes.mp4", "vtest.avi"):
        (video / name).write_bytes(b"x")
    clips = default_clips(tmp_path)
    kinds = [c.kind for c in clips]
    assert clips[0].name == "bikes.mp4" and clips[0].shake == STILL
    assert kinds.count("synthetic shake") == 2 and kinds[-1] == "tripod"
    assert {c.shake.seed for c in clips if c.kind == "synthetic shake"} == {0, 1}
    assert default_clips(tmp_path / "nowhere") == [
        c for c in default_clips(tmp_path / "nowhere") if c.kind == "real motion"
    ]  # only what exists


def test_a_real_clip_keeps_its_own_motion_at_the_live_size(tmp_path: Path) -> None:
    source = tmp_path / "pan.avi"
    writer = cv2.VideoWriter(str(source), cv2.VideoWriter.fourcc(*"FFV1"), 10, (160, 68))
    scene = np.random.default_rng(0).integers(0, 255, (68, 400, 3)).astype(np.uint8)
    for t in range(5):
        writer.write(np.ascontiguousarray(scene[:, 10 * t : 10 * t + 160]))
    writer.release()
    path = handheld_clip(source, tmp_path / "live.avi", 5, STILL)
    assert np.array_equal(path, np.zeros((5, 3)))
    capture = cv2.VideoCapture(str(tmp_path / "live.avi"))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 5 and frames[0].shape == (LIVE_HEIGHT, LIVE_WIDTH, 3)
    assert np.abs(frames[1].astype(int) - frames[0].astype(int)).mean() > 5  # the pan is still there


def test_the_table_names_the_worst_case_per_model_and_kind_of_motion(tmp_path: Path) -> None:
    clips = [
        Clip("bikes.mp4", tmp_path / "b.mp4", STILL, "real motion"),
        Clip("car", tmp_path / "c.mp4", STILL, "real motion"),
        Clip("vtest.avi", tmp_path / "v.avi", STILL, "tripod"),
    ]
    runs = (("rt", "wave"),)
    plain = SteadyResult(2.0, 1e11, 3e5, 60, 40.0)
    results = {
        ("bikes.mp4", "rt", "wave", False): plain,
        ("bikes.mp4", "rt", "wave", True): SteadyResult(0.8, 1.05e11, 3e5, 60, 35.0),  # 0.40x, 1.05x
        ("car", "rt", "wave", False): plain,
        ("car", "rt", "wave", True): SteadyResult(1.4, 1.0e11, 3.3e5, 60, 35.0),  # 0.70x
        ("vtest.avi", "rt", "wave", False): plain,
        ("vtest.avi", "rt", "wave", True): SteadyResult(0.8, 1.0e11, 3e5, 60, 35.0),
    }
    table = real_motion_table(clips, runs, results, 60, "rt 0123")
    assert [r[6] for r in table.rows] == ["0.40", "0.70", "0.40"] and table.rows[1][9] == "1.10"
    real, tripod = table.verdicts
    assert "rt on real motion, worst case car / wave: stabilized flicker 0.70x" in real and "MISSES" in real
    assert "rt on tripod" in tripod and "meets" in tripod
    assert "rt 0123" in table.setup
