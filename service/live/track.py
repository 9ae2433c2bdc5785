"""The stylizing video track: newest frame wins, inference in a worker thread, timestamps kept."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from service.dream import Dreamer
from service.engine import Engine, resize_to_fit
from service.live.controls import Controls
from service.look import Look
from service.painter import Painter

log = logging.getLogger(__name__)


@dataclass
class ResolutionGovernor:
    """Picks the longer side frames are stylized at so inference fits the frame budget of ``target_fps``.

    Network cost grows with the pixel count, so when the recent inference time (an exponential
    average) runs over budget the side shrinks by the square root of the overrun, down to
    ``min_side``; with ample headroom it grows back a step at a time, up to ``max_side``. Decisions
    wait ``settle`` frames after each change so one slow frame never makes the picture jump.
    """

    max_side: int
    min_side: int
    target_fps: float
    enabled: bool = True
    settle: int = 8
    step: int = 32
    side: int = 0
    _ema_ms: float = 0.0
    _since_change: int = 0

    def __post_init__(self) -> None:
        self.min_side = min(self.min_side, self.max_side)
        self.side = self.side or self.max_side

    @property
    def budget_ms(self) -> float:
        return 1000.0 / self.target_fps

    def observe(self, infer_ms: float) -> int:
        """Record one frame's inference time; returns the side to stylize the next frame at."""
        if not self.enabled:
            return self.side
        self._ema_ms = infer_ms if self._ema_ms == 0.0 else 0.8 * self._ema_ms + 0.2 * infer_ms
        self._since_change += 1
        if self._since_change < self.settle:
            return self.side
        if self._ema_ms > self.budget_ms and self.side > self.min_side:
            scaled = self.side * (self.budget_ms / self._ema_ms) ** 0.5
            self._change(max(self.min_side, int(scaled) // self.step * self.step))
        elif self._ema_ms < 0.6 * self.budget_ms and self.side < self.max_side:
            self._change(min(self.max_side, self.side + self.step))
        return self.side

    def _change(self, side: int) -> None:
        if side != self.side:
            log.debug("stylizing at %d px (inference %.0f ms, budget %.0f ms)", side, self._ema_ms, self.budget_ms)
            self.side, self._since_change, self._ema_ms = side, 0, 0.0  # measure the new size afresh


@dataclass
class TrackStats:
    """Counters of one stylizing track; ``snapshot`` turns them into rates since the last call."""

    frames_in: int = 0
    frames_out: int = 0
    dropped: int = 0
    failures: int = 0
    last_frame_at: float = field(default_factory=time.monotonic)
    infer_ms: deque[float] = field(default_factory=lambda: deque(maxlen=120))
    side: int = 0  # longer side frames are stylized at now (adaptive resolution)
    camera: tuple[int, int] = (0, 0)  # width and height of the last camera frame
    stabilized: bool = False  # the last frame was stabilized
    _mark: tuple[float, int, int] = field(default_factory=lambda: (time.monotonic(), 0, 0))

    def snapshot(self) -> dict[str, float | int]:
        now = time.monotonic()
        then, frames_in, frames_out = self._mark
        elapsed = max(now - then, 1e-6)
        self._mark = (now, self.frames_in, self.frames_out)
        times = np.asarray(self.infer_ms, dtype=np.float64)
        p50, p90 = np.percentile(times, [50, 90]) if times.size else (0.0, 0.0)
        return {
            "fps_in": round((self.frames_in - frames_in) / elapsed, 1),
            "fps_out": round((self.frames_out - frames_out) / elapsed, 1),
            "dropped": self.dropped,
            "failures": self.failures,
            "infer_ms_p50": round(float(p50), 1),
            "infer_ms_p90": round(float(p90), 1),
            "side": self.side,
            "stabilized": self.stabilized,
        }


class StylizedTrack(MediaStreamTrack):
    """Wraps a remote camera track; each ``recv`` returns the newest frame, stylized.

    aiortc's receive queue is unbounded, so a reader task drains it into a single slot: when
    inference is slower than the camera, older frames are dropped instead of queueing up latency.
    """

    kind = "video"

    def __init__(
        self,
        source: MediaStreamTrack,
        engine: Engine,
        controls: Controls,
        executor: Executor,
        max_side: int,
        dreamer: Dreamer | None = None,
        dream_executor: Executor | None = None,
        governor: ResolutionGovernor | None = None,
        pipelined: bool = True,
        slow_executor: Executor | None = None,
        slow_models: frozenset[str] = frozenset(),
    ) -> None:
        """``pipelined``: stylize the next frame while the sender encodes this one (aiortc asks for a frame
        only after encoding the last): inference and encoding overlap; a new control shows a frame later.
        ``slow_executor``: where frames of ``slow_models`` (the quality tier) run, so one peer that picks a
        slow model never holds the thread every realtime peer's frames wait for."""
        super().__init__()
        self.source = source
        self.engine = engine
        self.controls = controls
        self.executor = executor
        self.slow_executor = slow_executor
        self.slow_models = slow_models
        self.max_side = max_side
        self.dreamer = dreamer
        self.dream_executor = dream_executor or executor
        self._warming: asyncio.Future[None] | None = None
        self.governor = governor or ResolutionGovernor(max_side, max_side, 30.0, enabled=False)
        self.stats = TrackStats(side=self.governor.side)
        self._latest: VideoFrame | None = None
        self._arrived = asyncio.Event()
        self._source_ended = False
        self._reader: asyncio.Task[None] | None = None
        self._failing = False
        self.pipelined = pipelined
        self._upcoming: asyncio.Task[VideoFrame] | None = None  # the next output, started before it is asked for
        self._painter = Painter(engine, dreamer)  # this stream's memory; used by one worker thread at a time
        self._steady_pool: ThreadPoolExecutor | None = None  # finds the motion while the network runs

    async def _read(self) -> None:
        while True:
            try:
                frame = await self.source.recv()
            except MediaStreamError:
                self._source_ended = True
                self._arrived.set()
                return
            if not isinstance(frame, VideoFrame):
                continue
            if self._latest is not None:
                self.stats.dropped += 1
            self._latest = frame
            self.stats.frames_in += 1
            self.stats.last_frame_at = time.monotonic()
            self.stats.camera = (frame.width, frame.height)
            self._arrived.set()

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._reader is None:
            self._reader = asyncio.ensure_future(self._read())
        upcoming, self._upcoming = self._upcoming or asyncio.ensure_future(self._next_output()), None
        try:
            out = await upcoming
        except MediaStreamError:
            self.stop()
            raise
        self.stats.frames_out += 1
        if self.pipelined and self.readyState == "live":  # stopped while this frame was painted: nothing more
            self._upcoming = asyncio.ensure_future(self._next_output())
        return out

    async def _next_output(self) -> VideoFrame:
        """The newest camera frame (waiting for one if need be), processed."""
        while self._latest is None:
            if self._source_ended:
                raise MediaStreamError
            self._arrived.clear()
            await self._arrived.wait()
        frame, self._latest = self._latest, None
        return await self._process(frame)

    async def _process(self, frame: VideoFrame) -> VideoFrame:
        look = self._look_now()
        if look.mode == "passthrough":
            self._painter.follow(look)
            return frame
        rgb = resize_to_fit(frame.to_ndarray(format="rgb24"), self.max_side)
        dreaming = look.mode == "dream"
        if dreaming:
            job = partial(self._painter.paint, rgb, look)
        else:
            job = partial(self._painter.paint, rgb, look, self.governor.side, self._steady_pool_for(look))
        started = time.perf_counter()
        try:
            image = await asyncio.get_running_loop().run_in_executor(self._pool_for(look), job)
        except Exception:
            self.stats.failures += 1
            if not self._failing:
                log.exception("stylizing a frame failed; passing frames through until it recovers")
                self._failing = True
            return frame
        if self._failing:
            log.info("stylizing recovered after %d failed frames", self.stats.failures)
            self._failing = False
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        self.stats.infer_ms.append(elapsed_ms)
        if not dreaming:
            self.stats.side = self.governor.observe(elapsed_ms)
            self.stats.stabilized = look.stabilize is not None
        out = VideoFrame.from_ndarray(image, format="rgb24")
        out.pts, out.time_base = frame.pts, frame.time_base
        return out

    def _pool_for(self, look: Look) -> Executor:
        if look.mode == "dream":
            return self.dream_executor
        if self.slow_executor is not None and look.model in self.slow_models:
            return self.slow_executor
        return self.executor

    def _look_now(self) -> Look:
        """The look of the next frame; the blend is eased here, on the loop, so the worker sees fixed values.
        While live DeepDream loads, painted frames keep flowing."""
        c = self.controls
        styles = self.engine.model(c.look.model).styles
        if styles != c.look.styles:  # a style was added or removed while streaming: follow the names
            c.easing.follow(c.look.styles, styles)
            c.look = c.look.following(styles)
        look = c.look.blended(c.easing.step())
        if look.mode == "dream" and (self.dreamer is None or not self.dreamer.ready(look.dream.layer)):
            if self.dreamer is not None:
                self._start_warming(self.dreamer, look.dream.layer)
            look = replace(look, mode="style")
        return look

    def _steady_pool_for(self, look: Look) -> ThreadPoolExecutor | None:
        """The thread that finds the stabilization motion while the network runs (made on first need)."""
        if look.stabilize is None:
            return None
        if self._steady_pool is None:
            self._steady_pool = ThreadPoolExecutor(1, thread_name_prefix="steady")
        return self._steady_pool

    def _start_warming(self, dreamer: Dreamer, layer: str) -> None:
        if self._warming is None or self._warming.done():
            self._warming = asyncio.get_running_loop().run_in_executor(self.dream_executor, dreamer.warm, layer)
            self._warming.add_done_callback(self._warmed)

    @staticmethod
    def _warmed(future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.error("live DeepDream could not load: %s", future.exception())

    def stop(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
        self._source_ended = True  # a recv waiting for a frame (a relay's reader) ends instead of waiting forever
        self._arrived.set()
        if self._upcoming is not None:
            if self._upcoming.done() and not self._upcoming.cancelled():
                self._upcoming.exception()  # retrieved: the camera ended while nobody was asking
            self._upcoming.cancel()
            self._upcoming = None
        if self._steady_pool is not None:
            self._steady_pool.shutdown(wait=False)  # a frame still in flight finishes; nothing new starts
        super().stop()


class EncoderFrames(MediaStreamTrack):
    """The frames of ``source`` in the encoders' pixel format (yuv420p), converted once each in a worker thread.

    The subscribers of a relay share every frame, and aiortc's encoders convert a frame in their own threads:
    two converting one painted (rgb24) frame at once crash PyAV, whose frame caches its converter."""

    kind = "video"

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.source = source

    async def recv(self) -> VideoFrame:
        frame = await self.source.recv()
        assert isinstance(frame, VideoFrame)
        if frame.format.name == "yuv420p":
            return frame
        out = await asyncio.get_running_loop().run_in_executor(None, partial(frame.reformat, format="yuv420p"))
        out.pts, out.time_base = frame.pts, frame.time_base
        return out

    def stop(self) -> None:
        self.source.stop()
        super().stop()
