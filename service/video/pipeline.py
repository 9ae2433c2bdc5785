"""Offline video files: stylize every frame with the engine and the look, keep timing and audio.

The same engine and contract as the live service do the painting; service/video/media.py moves frames in and
out of containers. Output is written under a temporary name next to the target and renamed when complete, so
an error or Ctrl-C leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from service.dream import Dreamer, DreamOptions, DreamParams
from service.engine import Engine
from service.errors import BadRequest, FeatureUnavailable, ServiceError
from service.look import Look, LookUpdate
from service.painter import Painter
from service.stabilize import Motion, StabilizeOptions
from service.video.media import (
    DecodedFrame,
    FrameReader,
    VideoWriter,
    _close_quietly,
    display_dims,
    frame_duration,
    open_input,
    open_output,
    output_size,
    staged_output,
)
from service.video.schedule import BlendTrack, Schedule

log = logging.getLogger(__name__)

Progress = Callable[[int, int | None], None]


class Cancelled(ServiceError):
    """The caller asked the job to stop (Ctrl-C, DELETE /api/jobs/{id})."""

    status_code = 409


@dataclass(frozen=True)
class VideoOptions:
    """Everything that shapes one processed video, shared by the CLI, jobs and Ray: the look as asked (the
    control vocabulary, validated by :class:`LookUpdate`), its blends over time, and the output."""

    look: LookUpdate = LookUpdate()  # model, strength, colour, brush, steady, mode and dream keys; weights or...
    schedule: Schedule | None = None  # ...keyframed blends (neither: the model's first style throughout)
    steady: StabilizeOptions = StabilizeOptions()  # the stabilizer's tuning when the look asks for it
    max_size: int | None = None  # longer side of the output; None keeps the input size
    codec: str = "libx264"
    container: str | None = None  # PyAV format name; None guesses from the output's suffix
    workers: int = 1  # frames stylized concurrently (each ONNX Runtime run stays single-threaded)
    dream_options: DreamOptions = DreamOptions(max_side_cpu=320, max_side_gpu=1280)

    def __post_init__(self) -> None:
        if self.look.weights is not None and self.schedule is not None:
            raise BadRequest("give weights or schedule, not both")
        DreamParams().updated(self.look.dream_changes())  # dream keys checked before any frame is read
        if self.max_size is not None and self.max_size < 16:
            raise BadRequest(f"max size must be at least 16 px, got {self.max_size}")
        if self.workers < 1:
            raise BadRequest(f"workers must be >= 1, got {self.workers}")
        if self.codec not in av.codecs_available:
            raise BadRequest(f"unknown codec {self.codec!r}; try libx264, mpeg4, ffv1, libvpx-vp9")

    @property
    def dreaming(self) -> bool:
        return self.look.mode == "dream"

    def on(self, engine: Engine) -> tuple[Look, BlendTrack]:
        """The video's look and its blend over time on ``engine``'s models: model and style names are checked
        here (a job checks them before its upload is stored)."""
        base = self.look.as_look(engine, steady=self.steady)
        schedule = self.schedule or Schedule.constant(self.look.weights or {base.styles[0]: 1.0})
        return base, schedule.for_styles(base.styles)


@dataclass(frozen=True)
class VideoResult:
    frames: int
    stopped: str | None = None  # where a broken input stopped decoding; None when it was read to the end


class FrameStylizer:
    """The video's side of the look pipeline: the blend of each frame's time from the schedule, and the
    output size; the painting itself (style or dream, stabilize) is the shared :class:`Painter`."""

    def __init__(self, engine: Engine, options: VideoOptions, size: tuple[int, int]) -> None:
        self.options = options
        self.base, self.track = options.on(engine)
        self.size = size
        dreamer = None
        if options.dreaming:
            dreamer = Dreamer(options.dream_options)
            if dreamer.unavailable:
                raise FeatureUnavailable(dreamer.unavailable)
            dreamer.warm(self.base.dream.layer)
        self.painter = Painter(engine, dreamer, weights_reset=False)  # a schedule moves the blend every frame

    def look(self, seconds: float) -> Look:
        """The look of the frame at ``seconds``: the video's look with the schedule's blend of that time."""
        return self.base.blended(self.track.at(seconds))

    def resized(self, frame: DecodedFrame) -> np.ndarray:
        """The frame at the output size."""
        rgb = frame.rgb
        if rgb.shape[:2] != self.size:
            rgb = cv2.resize(rgb, self.size[::-1], interpolation=cv2.INTER_AREA)
        return rgb

    def stylize(self, rgb: np.ndarray, seconds: float) -> np.ndarray:
        """The stylization of a resized frame with the blend of its time; thread-safe."""
        return self.painter.stylize(rgb, self.look(seconds))

    def motion(self, rgb: np.ndarray, seconds: float = 0.0) -> Motion | None:
        """What stabilizing this frame needs from the frames before it (None: not stabilizing). Call it
        in order, after the previous frame's ``finish``, while this frame is being stylized elsewhere."""
        return self.painter.motion(rgb, self.look(seconds))

    def finish(
        self, rgb: np.ndarray, stylized: np.ndarray, motion: Motion | None = None, seconds: float = 0.0
    ) -> np.ndarray:
        """Dream (in dream mode) and stabilize (when asked, with ``motion`` if it was found already);
        must see frames in order."""
        return self.painter.finish(rgb, stylized, self.look(seconds), motion)


def stylized_frames(
    frames: Iterator[DecodedFrame | av.Packet],
    stylizer: FrameStylizer,
    on_packet: Callable[[av.Packet], None],
) -> Iterator[tuple[DecodedFrame, np.ndarray]]:
    """Frames in order with their final output; ``workers`` frames are stylized at once while this
    thread decodes, encodes and finds each frame's stabilization motion."""
    window = stylizer.options.workers + 1  # one more than workers keeps them busy while we encode
    pending: deque[tuple[DecodedFrame, np.ndarray, Future[np.ndarray]]] = deque()

    def done(frame: DecodedFrame, rgb: np.ndarray, future: Future[np.ndarray]) -> tuple[DecodedFrame, np.ndarray]:
        motion = stylizer.motion(rgb, frame.seconds)  # the previous frame is finished; this one may be stylizing
        return frame, stylizer.finish(rgb, future.result(), motion, frame.seconds)

    with ThreadPoolExecutor(stylizer.options.workers, thread_name_prefix="video-stylize") as pool:
        try:
            for item in frames:
                if isinstance(item, av.Packet):
                    on_packet(item)
                    continue
                rgb = stylizer.resized(item)
                pending.append((item, rgb, pool.submit(stylizer.stylize, rgb, item.seconds)))
                while len(pending) >= window:
                    yield done(*pending.popleft())
            while pending:
                yield done(*pending.popleft())
        finally:
            for _, _, future in pending:
                future.cancel()


# -- the in-process engine -------------------------------------------------------------------------


def process_video(
    src: Path,
    dst: Path,
    engine: Engine,
    options: VideoOptions,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> VideoResult:
    """Stylize ``src`` into ``dst``; raises a ServiceError (nothing written) or returns what was done."""
    with contextlib.closing(open_input(src)) as container:
        source = container.streams.video[0]
        size = output_size(*display_dims(src, source), options.max_size)
        stylizer = FrameStylizer(engine, options, size)
        total = int(source.frames or 0) or None
        duration = frame_duration(source)
        with staged_output(dst) as tmp:
            output = open_output(str(tmp), options.container, str(dst))
            try:
                writer = VideoWriter.encoding(output, options.codec, source, size)
                reader = FrameReader(container)
                if reader.audio is not None:
                    writer.add_audio(reader.audio)
                done = 0
                for frame, out in stylized_frames(reader.items(), stylizer, writer.write_audio):
                    writer.write_frame(out, frame.pts, duration)
                    done += 1
                    if progress:
                        progress(done, total)
                    if cancel is not None and cancel.is_set():
                        raise Cancelled(f"cancelled after {done} frames")
                if done == 0:
                    raise BadRequest(f"{src}: no video frames could be decoded ({reader.stopped or 'empty'})")
                writer.close()
            except av.FFmpegError as exc:
                _close_quietly(output)
                raise BadRequest(f"cannot write {dst}: {exc}") from None
            except BaseException:
                _close_quietly(output)
                raise
    return VideoResult(done, reader.stopped)
