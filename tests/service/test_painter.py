"""The one look pipeline: the live sequence and the video's ordered halves give the same frames, and a new
look starts the stream's memory afresh (live) or keeps it through a schedule (video)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import FAST

from service import contract
from service.engine import Engine, RuntimeOptions
from service.painter import Look, Painter
from service.stabilize import StabilizeOptions


@pytest.fixture(scope="module")
def engine(models_dir: Path) -> Engine:
    return Engine.load(models_dir, RuntimeOptions())


def frames(count: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    return [np.roll(base, i, axis=1) for i in range(count)]


def look(style: int, steady: bool = True) -> Look:
    return Look(model=FAST, weights=contract.one_hot(style, 3), stabilize=StabilizeOptions() if steady else None)


def test_live_paint_with_the_overlap_equals_the_ordered_halves(engine: Engine) -> None:
    live, ordered = Painter(engine), Painter(engine)
    with ThreadPoolExecutor(1) as pool:
        for frame in frames():
            a = live.paint(frame, look(0), pool=pool)
            motion = ordered.motion(frame, look(0))
            b = ordered.finish(frame, ordered.stylize(frame, look(0)), look(0), motion)
            np.testing.assert_array_equal(a, b)


def test_a_new_look_starts_afresh_live_but_a_schedule_keeps_the_memory(engine: Engine) -> None:
    clip = frames()
    live, video = Painter(engine), Painter(engine, weights_reset=False)
    for frame in clip[:3]:
        live.paint(frame, look(0))
        video.paint(frame, look(0))
    fresh = Painter(engine).paint(clip[3], look(1))  # no memory at all
    np.testing.assert_array_equal(live.paint(clip[3], look(1)), fresh)  # live: the new blend shows at once
    assert np.abs(video.paint(clip[3], look(1)).astype(int) - fresh).mean() > 1  # video: pulled toward the past


def test_passthrough_and_size_changes_forget(engine: Engine) -> None:
    painter = Painter(engine)
    clip = frames()
    for frame in clip[:3]:
        painter.paint(frame, look(0))
    passthrough = Look(model=FAST, weights=contract.one_hot(0, 3), mode="passthrough")
    np.testing.assert_array_equal(painter.paint(clip[3], passthrough), clip[3])
    np.testing.assert_array_equal(painter.paint(clip[4], look(0)), Painter(engine).paint(clip[4], look(0)))
    small = painter.paint(clip[4], look(0), side=32)  # adaptive resolution: a new size, fresh memory
    assert small.shape == clip[4].shape
