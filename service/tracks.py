"""The stylizing video track: newest frame wins, inference in a worker thread, timestamps kept."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from service.blend import Easing
from service.dream import Dreamer, DreamParams
from service.engine import Engine, resize_to_fit

log = logging.getLogger(__name__)

MODES = ("style", "dream", "passthrough")


@dataclass
class Controls:
    """What one peer asked for; mutated only on the event loop by control messages."""

    model: str
    easing: Easing
    strength: float = 1.0
    keep_color: bool = False
    mode: str = "style"  # style: the ONNX network; dream: iterative DeepDream; passthrough
    dream: DreamParams = field(default_factory=DreamParams)


@dataclass
class TrackStats:
    """Counters of one stylizing track; ``snapshot`` turns them into rates since the last call."""

    frames_in: int = 0
    frames_out: int = 0
    dropped: int = 0
    failures: int = 0
    last_frame_at: float = field(default_factory=time.monotonic)
    infer_ms: deque[float] = field(default_factory=lambda: deque(maxlen=120))
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
        }


class StylizedTrack(MediaStreamTrack):
    """Wraps a remote camera track; each ``recv`` returns the newest frame, stylized.

    aiortc's receive queue is unbounded, so a reader task drains it into a single slot: when
    inference is slower than the camera, older frames are dropped instead of queueing up latency.
    """

    kind = "video"

    def __init__(
        self, source: MediaStreamTrack, engine: Engine, controls: Controls, executor: Executor, max_side: int,
        dreamer: Dreamer | None = None, dream_executor: Executor | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.engine = engine
        self.controls = controls
        self.executor = executor
        self.max_side = max_side
        self.dreamer = dreamer
        self.dream_executor = dream_executor or executor
        self._dreamed: np.ndarray | None = None  # the last dreamed frame, fed back into the next
        self.stats = TrackStats()
        self._latest: VideoFrame | None = None
        self._arrived = asyncio.Event()
        self._source_ended = False
        self._reader: asyncio.Task[None] | None = None
        self._failing = False

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
            self._arrived.set()

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._reader is None:
            self._reader = asyncio.ensure_future(self._read())
        while self._latest is None:
            if self._source_ended:
                self.stop()
                raise MediaStreamError
            self._arrived.clear()
            await self._arrived.wait()
        frame, self._latest = self._latest, None
        out = await self._process(frame)
        self.stats.frames_out += 1
        return out

    async def _process(self, frame: VideoFrame) -> VideoFrame:
        controls = self.controls
        weights = controls.easing.step()  # stepped on the loop, so the worker sees a fixed vector
        if controls.mode != "dream":
            self._dreamed = None
        if controls.mode == "passthrough":
            return frame
        rgb = resize_to_fit(frame.to_ndarray(format="rgb24"), self.max_side)
        started = time.perf_counter()
        try:
            if controls.mode == "dream" and self.dreamer is not None:
                job = partial(self.dreamer.dream, rgb, self._dreamed, controls.dream, seed=self.stats.frames_out)
                image = await asyncio.get_running_loop().run_in_executor(self.dream_executor, job)
                self._dreamed = image
            else:
                job = partial(
                    self.engine.stylize,
                    rgb,
                    weights,
                    model=controls.model,
                    strength=controls.strength,
                    keep_color=controls.keep_color,
                )
                image = await asyncio.get_running_loop().run_in_executor(self.executor, job)
        except Exception:
            self.stats.failures += 1
            if not self._failing:
                log.exception("stylizing a frame failed; passing frames through until it recovers")
                self._failing = True
            return frame
        if self._failing:
            log.info("stylizing recovered after %d failed frames", self.stats.failures)
            self._failing = False
        self.stats.infer_ms.append((time.perf_counter() - started) * 1000.0)
        out = VideoFrame.from_ndarray(image, format="rgb24")
        out.pts, out.time_base = frame.pts, frame.time_base
        return out

    def stop(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
        super().stop()
