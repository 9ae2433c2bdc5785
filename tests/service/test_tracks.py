"""The stylizing track alone: newest frame wins under a slow engine; a failing frame passes through."""

from __future__ import annotations

import asyncio
import fractions
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from service.live.controls import Controls
from service.live.track import ResolutionGovernor, StylizedTrack
from service.look import Look
from service.stabilize import StabilizeOptions

TIME_BASE = fractions.Fraction(1, 90_000)


class Camera(MediaStreamTrack):
    """``count`` frames, one every ``interval`` seconds; records when each pts was produced."""

    kind = "video"

    def __init__(self, count: int, interval: float, size: tuple[int, int] = (24, 32)) -> None:
        super().__init__()
        self.count, self.interval, self.sent, self.size = count, interval, 0, size
        self.produced_at: dict[int, float] = {}

    async def recv(self) -> VideoFrame:
        if self.sent >= self.count:
            raise MediaStreamError
        await asyncio.sleep(self.interval)
        frame = VideoFrame.from_ndarray(np.full((*self.size, 3), self.sent % 200, np.uint8), format="rgb24")
        frame.pts, frame.time_base = self.sent * 3000, TIME_BASE
        self.produced_at[frame.pts] = time.monotonic()
        self.sent += 1
        return frame


class StubEngine:
    """Inverts the picture after ``delay`` seconds, or raises while ``failing``."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay, self.failing = delay, False

    def model(self, name: str | None) -> SimpleNamespace:
        # one style: the tracks' weights are [1, 1]; no calibrated moving blend (the stabilizer's default)
        return SimpleNamespace(styles=("only",), entry=SimpleNamespace(moving_blend=None))

    def stylize(self, rgb: np.ndarray, weights: np.ndarray, **_: object) -> np.ndarray:
        time.sleep(self.delay)
        if self.failing:
            raise RuntimeError("boom")
        return 255 - rgb


def make_track(camera: Camera, engine: StubEngine, executor: ThreadPoolExecutor) -> StylizedTrack:
    controls = Controls.starting(Look(model="m", styles=("only",), weights=np.ones((1, 1), np.float32)), 0)
    return StylizedTrack(camera, engine, controls, executor, max_side=640)  # type: ignore[arg-type]


async def drain(track: StylizedTrack) -> list[tuple[VideoFrame, float]]:
    received = []
    while True:
        try:
            received.append((await track.recv(), time.monotonic()))
        except MediaStreamError:
            return received


def test_slow_inference_drops_old_frames_and_keeps_timestamps() -> None:
    camera = Camera(count=90, interval=0.01)
    with ThreadPoolExecutor(1) as executor:
        track = make_track(camera, StubEngine(delay=0.08), executor)
        received = asyncio.run(drain(track))
    assert track.stats.dropped > 40 and len(received) < 30
    pts = [frame.pts for frame, _ in received]
    assert pts == sorted(set(pts)) and set(pts) <= set(camera.produced_at)
    ages = [at - camera.produced_at[frame.pts] for frame, at in received]
    assert max(ages) < 0.3, f"a frame waited behind others: ages {ages}"  # 80 ms inference + one slot
    assert all(frame.time_base == TIME_BASE for frame, _ in received)
    assert int(received[0][0].to_ndarray(format="rgb24")[0, 0, 0]) == 255 - (received[0][0].pts // 3000) % 200


def test_failing_frames_pass_through_and_are_logged_once_per_burst(caplog: pytest.LogCaptureFixture) -> None:
    camera = Camera(count=12, interval=0.005)
    engine = StubEngine()

    async def scenario(track: StylizedTrack) -> list[VideoFrame]:
        frames = []
        engine.failing = True
        for _ in range(5):
            frames.append(await track.recv())
        engine.failing = False
        frames.append(await track.recv())
        return frames

    with ThreadPoolExecutor(1) as executor, caplog.at_level(logging.INFO, logger="service.live.track"):
        track = make_track(camera, engine, executor)
        frames = asyncio.run(scenario(track))
    for frame in frames[:5]:  # the camera's own pixels
        assert int(frame.to_ndarray(format="rgb24")[0, 0, 0]) == (frame.pts // 3000) % 200
    assert int(frames[5].to_ndarray(format="rgb24")[0, 0, 0]) == 255 - (frames[5].pts // 3000) % 200
    assert track.stats.failures == 5
    assert sum("stylizing a frame failed" in r.getMessage() for r in caplog.records) == 1
    assert any("recovered" in r.getMessage() for r in caplog.records)


def test_governor_shrinks_to_the_budget_and_grows_back_with_headroom() -> None:
    governor = ResolutionGovernor(max_side=640, min_side=320, target_fps=20, settle=4)  # 50 ms budget

    def cost(side: int) -> float:  # inference time grows with the pixel count: 80 ms at 640
        return 80.0 * (side / 640) ** 2

    sides = [governor.observe(cost(governor.side)) for _ in range(60)]
    assert sides[:3] == [640, 640, 640]  # one decision per settle period, not per frame
    assert 448 <= sides[-1] <= 512 and cost(sides[-1]) <= 50  # fits the budget, and not far below it
    assert len(set(sides[-20:])) == 1  # settled: no oscillation
    for _ in range(200):  # the load goes away
        governor.observe(5.0)
    assert governor.side == 640
    for _ in range(200):  # a hopeless overrun stops at the floor
        governor.observe(1000.0)
    assert governor.side == 320
    off = ResolutionGovernor(max_side=640, min_side=320, target_fps=20, enabled=False)
    assert {off.observe(1000.0) for _ in range(50)} == {640}


class SizeCostEngine(StubEngine):
    """Inverts the picture; takes longer the more pixels it gets (like a real network)."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[tuple[int, int]] = []

    def stylize(self, rgb: np.ndarray, weights: np.ndarray, **_: object) -> np.ndarray:
        self.sizes.append(rgb.shape[:2])
        time.sleep(0.06 * rgb.shape[0] * rgb.shape[1] / (240 * 320))
        return 255 - rgb


def test_adaptive_resolution_keeps_the_stream_size_and_the_frame_rate() -> None:
    camera = Camera(count=150, interval=0.01, size=(240, 320))
    engine = SizeCostEngine()
    governor = ResolutionGovernor(max_side=320, min_side=96, target_fps=40, settle=3)  # 25 ms budget
    with ThreadPoolExecutor(1) as executor:
        controls = Controls.starting(Look(model="m", styles=("only",), weights=np.ones((1, 1), np.float32)), 0)
        track = StylizedTrack(camera, engine, controls, executor, 320, governor=governor)  # type: ignore[arg-type]
        received = asyncio.run(drain(track))
    assert {f.to_ndarray(format="rgb24").shape for f, _ in received} == {(240, 320, 3)}  # size kept
    assert engine.sizes[0] == (240, 320) and max(engine.sizes[-5:])[1] < 320  # stylized smaller later
    assert track.stats.snapshot()["side"] == governor.side < 320


def test_steady_frames_lean_on_the_previous_output_until_the_look_changes() -> None:
    camera = Camera(count=40, interval=0.03, size=(48, 64))  # grey level k on frame k: no motion
    engine = StubEngine()

    async def scenario(track: StylizedTrack) -> list[VideoFrame]:
        frames = [await track.recv() for _ in range(4)]
        # a new look: shown at once, not blended with the old one
        track.controls.look = replace(track.controls.look, strength=0.5)
        frames.append(await track.recv())
        track.controls.look = replace(track.controls.look, stabilize=None)
        frames.append(await track.recv())
        return frames

    with ThreadPoolExecutor(1) as executor:
        track = make_track(camera, engine, executor)
        track.controls.look = replace(track.controls.look, stabilize=StabilizeOptions())
        frames = asyncio.run(scenario(track))
    values = [int(f.to_ndarray(format="rgb24")[24, 32, 0]) for f in frames]
    fresh = [255 - (f.pts // 3000) % 200 for f in frames]  # what the stub engine makes of each frame
    assert values[0] == fresh[0]  # nothing to lean on yet
    for i in (1, 2, 3):  # 0.9 of the warped previous output + 0.1 of the new stylization
        expected = 0.9 * values[i - 1] + 0.1 * fresh[i]
        assert abs(values[i] - expected) <= 1.5 and values[i] != fresh[i], (values, fresh)
    assert values[4] == fresh[4]  # strength changed; (the stub ignores strength) the memory was dropped
    assert values[5] == fresh[5] and track.stats.snapshot()["stabilized"] is False


@pytest.mark.parametrize("pipelined", [True, False])
def test_pipelined_track_stylizes_the_next_frame_before_it_is_asked_for(pipelined: bool) -> None:
    """aiortc asks for a frame only after encoding the last: the next one should already be under way."""
    camera = Camera(count=40, interval=0.01)
    engine = SizeCostEngine()

    async def scenario(track: StylizedTrack) -> tuple[int, int, list[VideoFrame]]:
        first = await track.recv()
        await asyncio.sleep(0.3)  # the sender encodes the first frame
        started = len(engine.sizes)
        frames = [first] + [await track.recv() for _ in range(3)]
        track.stop()
        return started, len(engine.sizes), frames

    with ThreadPoolExecutor(1) as executor:
        controls = Controls.starting(Look(model="m", styles=("only",), weights=np.ones((1, 1), np.float32)), 0)
        track = StylizedTrack(camera, engine, controls, executor, 320, pipelined=pipelined)  # type: ignore[arg-type]
        started, total, frames = asyncio.run(scenario(track))
    assert started == (2 if pipelined else 1)  # one more frame is stylized than was asked for, no more
    pts = [f.pts for f in frames]
    assert pts == sorted(set(pts)) and total == 4  # stopping cancels the one started ahead, before it runs
    for frame in frames:  # each output is its own frame, stylized
        assert int(frame.to_ndarray(format="rgb24")[0, 0, 0]) == 255 - (frame.pts // 3000) % 200


def test_a_slow_model_runs_on_its_own_thread_and_the_fast_pool_stays_free() -> None:
    """One peer on the quality tier: its frames go to the slow pool, so the pool every realtime peer's frames
    wait for keeps running while a slow frame is in flight."""
    threads: list[str] = []

    class Recording(StubEngine):
        def stylize(self, rgb: np.ndarray, weights: np.ndarray, **kw: object) -> np.ndarray:
            threads.append(threading.current_thread().name)
            return super().stylize(rgb, weights, **kw)

    async def scenario() -> float:
        fast = ThreadPoolExecutor(1, thread_name_prefix="fast")
        slow = ThreadPoolExecutor(1, thread_name_prefix="slow")
        controls = Controls.starting(Look(model="quality", styles=("only",), weights=np.ones((1, 1), np.float32)), 0)
        track = StylizedTrack(
            Camera(4, 0.01),
            Recording(delay=0.3),
            controls,
            fast,
            max_side=640,  # type: ignore[arg-type]
            slow_executor=slow,
            slow_models=frozenset({"quality"}),
            pipelined=False,
        )
        loop = asyncio.get_running_loop()
        first = asyncio.ensure_future(track.recv())
        await asyncio.sleep(0.1)  # the slow frame is in flight now
        started = time.monotonic()
        await loop.run_in_executor(fast, lambda: None)  # a realtime peer's frame would not wait for it
        waited = time.monotonic() - started
        await first
        track.stop()
        fast.shutdown()
        slow.shutdown()
        return waited

    waited = asyncio.run(scenario())
    assert threads and all(name.startswith("slow") for name in threads), threads
    assert waited < 0.1
