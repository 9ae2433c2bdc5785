"""The Ray engine (a small local Ray) matches the in-process engine frame for frame."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from clips import FRAMES, GOP, audio_packets, read_frames, write_clip

from service.engine import Engine, RuntimeOptions
from service.video.pipeline import VideoOptions, process_video
from service.video.scaleout import plan_chunks, process_video_ray
from service.video.schedule import Schedule

ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install ray)")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()


def test_chunks_start_on_keyframes_and_overlap_for_stabilization() -> None:
    pts = list(range(0, 24 * 10, 10))
    keyframes = {p for p in pts if p % 60 == 0}
    plan = plan_chunks(pts, keyframes, 3, overlap=4)
    assert [c.start_pts for c in plan] == [0, 60, 180] or [c.start_pts for c in plan] == [0, 120, 180]
    assert all(c.seek_pts in keyframes and c.seek_pts <= c.warmup_pts <= c.start_pts for c in plan)
    assert [c.end_pts for c in plan] == [c.start_pts for c in plan[1:]] + [None]
    assert plan[1].warmup_pts == plan[1].start_pts - 40


def test_ray_output_matches_in_process(local_ray: None, models_dir: Path, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4")
    options = VideoOptions(schedule=Schedule.constant({"the_scream": 1.0}))
    local, scaled = tmp_path / "local.mp4", tmp_path / "ray.mp4"
    process_video(clip, local, Engine.load(models_dir, RuntimeOptions()), options)
    result = process_video_ray(clip, scaled, models_dir, options, chunks=FRAMES // GOP)
    assert result.frames == FRAMES and result.stopped is None
    with av.open(str(local)) as a, av.open(str(scaled)) as b:
        assert [f.pts for f in a.decode(video=0)] == [f.pts for f in b.decode(video=0)]
    assert audio_packets(scaled) == audio_packets(clip)
    for x, y in zip(read_frames(local), read_frames(scaled), strict=True):
        assert np.abs(x.astype(int) - y).mean() < 4  # H.264 noise: chunks start on their own IDR frames
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "local.mp4", "ray.mp4"]
