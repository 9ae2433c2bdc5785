"""The one look pipeline: the live sequence and the video's ordered halves give the same frames, and a new
look starts the stream's memory afresh (live) or keeps it through a schedule (video)."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from clips import panning
from conftest import FAST, STYLES

from service import contract
from service.engine import Engine, RuntimeOptions
from service.look import Look
from service.painter import Painter
from service.stabilize import StabilizeOptions, Stabilizer


@pytest.fixture(scope="module")
def engine(models_dir: Path) -> Engine:
    return Engine.load(models_dir, RuntimeOptions())


def frames(count: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    return [np.roll(base, i, axis=1) for i in range(count)]


def look(style: int, steady: bool = True) -> Look:
    return Look(
        model=FAST, styles=STYLES, weights=contract.one_hot(style, 3), stabilize=StabilizeOptions() if steady else None
    )


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
    passthrough = Look(model=FAST, styles=STYLES, weights=contract.one_hot(0, 3), mode="passthrough")
    np.testing.assert_array_equal(painter.paint(clip[3], passthrough), clip[3])
    np.testing.assert_array_equal(painter.paint(clip[4], look(0)), Painter(engine).paint(clip[4], look(0)))
    small = painter.paint(clip[4], look(0), side=32)  # adaptive resolution: a new size, fresh memory
    assert small.shape == clip[4].shape


def test_a_stream_is_stabilized_with_its_models_calibrated_moving_blend(models_dir: Path, tmp_path: Path) -> None:

    entries = contract.read_manifest(models_dir / contract.MANIFEST_NAME)
    for entry in entries:
        (tmp_path / entry.file).symlink_to(models_dir / entry.file)
    calibrated = [dataclasses.replace(e, moving_blend=0.8) if e.name == FAST else e for e in entries]
    contract.write_manifest(tmp_path / contract.MANIFEST_NAME, calibrated)
    assert contract.read_manifest(tmp_path / contract.MANIFEST_NAME) == calibrated  # it survives the round trip
    engine = Engine.load(tmp_path, RuntimeOptions())
    painter = Painter(engine)
    by_hand = {b: Stabilizer(StabilizeOptions(moving_blend=b)) for b in (0.7, 0.8)}
    for i in range(6):
        frame = panning(i)
        painted = painter.paint(frame, look(0))
        stylized = engine.stylize(frame, contract.one_hot(0, 3), model=FAST)
        expected = {b: s.step(frame, stylized) for b, s in by_hand.items()}
    np.testing.assert_array_equal(painted, expected[0.8])
    assert np.abs(expected[0.8].astype(int) - expected[0.7]).mean() > 0.1  # the calibration made a difference


def test_a_manifest_moving_blend_outside_0_1_is_refused(models_dir: Path) -> None:
    entry = contract.read_manifest(models_dir / contract.MANIFEST_NAME)[0]
    with pytest.raises(contract.ContractError, match="moving_blend"):
        contract.ModelEntry.from_json({**entry.to_json(), "moving_blend": 1.5})
    assert "moving_blend" not in entry.to_json()  # none calibrated: the manifest does not say null
