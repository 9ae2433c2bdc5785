"""Offline video files: decode with PyAV, stylize every frame, keep timing and audio; ``livestyle-video``.

The same engine and contract as the live service do the painting; this module only moves frames
in and out of containers. Output is written under a temporary name next to the target and renamed
when complete, so an error or Ctrl-C leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

import av
import cv2
import numpy as np
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.video.stream import VideoStream

from service import contract
from service.blend import check_strength
from service.brush import BRUSH_MAX, BRUSH_MIN, check_brush
from service.dream import LAYERS as DREAM_LAYERS
from service.dream import Dreamer, DreamOptions, DreamParams
from service.engine import Engine, RuntimeOptions
from service.errors import BadRequest, FeatureUnavailable, ServiceError, UnsupportedMedia
from service.look import LookUpdate, parse_weights_field
from service.schedule import BlendTrack, Schedule, read_schedule
from service.settings import Settings
from service.stabilize import Motion, StabilizeOptions, Stabilizer

log = logging.getLogger(__name__)

Progress = Callable[[int, int | None], None]


class Cancelled(ServiceError):
    """The caller asked the job to stop (Ctrl-C, DELETE /api/jobs/{id})."""

    status_code = 409


@dataclass(frozen=True)
class VideoOptions:
    """Everything that shapes one processed video; validated here, shared by CLI, API and Ray."""

    schedule: Schedule | None = None  # None: the model's first style throughout
    model: str | None = None
    strength: float = 1.0
    preserve_color: bool = False
    brush: float = 1.0  # stroke scale (service/brush.py)
    max_size: int | None = None  # longer side of the output; None keeps the input size
    stabilize: StabilizeOptions | None = None
    codec: str = "libx264"
    container: str | None = None  # PyAV format name; None guesses from the output's suffix
    workers: int = 1  # frames stylized concurrently (each ONNX Runtime run stays single-threaded)
    dream: DreamParams | None = None  # iterative DeepDream instead of the style network (frames in order)
    dream_options: DreamOptions = DreamOptions(max_side_cpu=320, max_side_gpu=1280)

    def __post_init__(self) -> None:
        check_strength(self.strength)
        check_brush(self.brush)
        if self.max_size is not None and self.max_size < 16:
            raise BadRequest(f"max size must be at least 16 px, got {self.max_size}")
        if self.workers < 1:
            raise BadRequest(f"workers must be >= 1, got {self.workers}")
        if self.codec not in av.codecs_available:
            raise BadRequest(f"unknown codec {self.codec!r}; try libx264, mpeg4, ffv1, libvpx-vp9")


@dataclass(frozen=True)
class VideoResult:
    frames: int
    stopped: str | None = None  # where a broken input stopped decoding; None when it was read to the end


@dataclass(frozen=True)
class DecodedFrame:
    pts: int
    seconds: float  # from the stream's first frame: what schedules are timed against
    rgb: np.ndarray


# -- input -----------------------------------------------------------------------------------------


def open_input(path: Path) -> InputContainer:
    """Open a file that holds a video stream; UnsupportedMedia naming the file otherwise."""
    if not path.is_file():
        raise BadRequest(f"{path}: no such file")
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise UnsupportedMedia(f"{path}: not a video file PyAV can read ({exc})") from None
    if not container.streams.video:
        container.close()
        raise UnsupportedMedia(f"{path}: contains no video stream")
    return container


def first_pts(stream: VideoStream) -> int:
    return int(stream.start_time or 0)


class FrameReader:
    """Decodes one video stream (from ``seek_pts`` up to ``end_pts``) and passes audio packets along.

    A file that breaks mid-stream ends the iteration early; ``stopped`` then says where.
    """

    def __init__(
        self,
        container: InputContainer,
        *,
        with_audio: bool = True,
        seek_pts: int | None = None,
        end_pts: int | None = None,
    ) -> None:
        self.container = container
        self.video = container.streams.video[0]
        audio = container.streams.audio
        self.audio: AudioStream | None = audio[0] if with_audio and audio else None
        self.seek_pts = seek_pts
        self.end_pts = end_pts
        self.decoded = 0
        self.last_seconds = 0.0
        self.stopped: str | None = None

    def items(self) -> Iterator[DecodedFrame | av.Packet]:
        streams = [s for s in (self.video, self.audio) if s is not None]
        time_base = self.video.time_base
        assert time_base is not None
        origin = first_pts(self.video)
        if self.seek_pts is not None:
            self.container.seek(self.seek_pts, stream=self.video, backward=True)
        try:
            for packet in self.container.demux(*streams):
                if packet.stream is not self.video:
                    if packet.dts is not None:
                        yield packet
                    continue
                for frame in packet.decode():
                    assert isinstance(frame, av.VideoFrame)
                    pts = frame.pts if frame.pts is not None else origin + self.decoded
                    if self.end_pts is not None and pts >= self.end_pts:
                        return
                    self.decoded += 1
                    self.last_seconds = float((pts - origin) * time_base)
                    yield DecodedFrame(pts, self.last_seconds, frame.to_ndarray(format="rgb24"))
        except av.FFmpegError as exc:
            self.stopped = f"decoding failed after frame {self.decoded} ({self.last_seconds:.2f} s): {exc}"
            return
        self._check_complete()

    def _check_complete(self) -> None:
        if self.seek_pts is not None or self.end_pts is not None:
            return
        expected = int(self.video.frames or 0)
        if expected and self.decoded < expected:
            duration, time_base = self.video.duration, self.video.time_base
            total = float(duration * time_base) if duration and time_base else None
            of_total = f" of {total:.2f} s" if total else ""
            self.stopped = (
                f"the stream ends at frame {self.decoded} of {expected} "
                f"({self.last_seconds:.2f} s{of_total}); the file is truncated or damaged"
            )


# -- stylization -----------------------------------------------------------------------------------


def output_size(height: int, width: int, max_size: int | None) -> tuple[int, int]:
    """Fit within ``max_size`` and round down to even sides (4:2:0 chroma needs them)."""
    if max_size is not None:
        height, width = contract.fit_within(height, width, max_size)
    return max(2, height - height % 2), max(2, width - width % 2)


class FrameStylizer:
    """Resize, stylize with the blend of the frame's time, then stabilize in frame order."""

    def __init__(self, engine: Engine, options: VideoOptions, size: tuple[int, int]) -> None:
        loaded = engine.model(options.model)
        self.engine = engine
        self.options = options
        self.model = loaded.entry.name
        schedule = options.schedule or Schedule.constant({loaded.styles[0]: 1.0})
        self.track: BlendTrack = schedule.for_styles(loaded.styles)
        self.size = size
        self._stabilizer = Stabilizer(options.stabilize) if options.stabilize else None
        self._frames_done = 0
        self._dreamer: Dreamer | None = None
        self._dreamed: np.ndarray | None = None
        if options.dream is not None:
            self._dreamer = Dreamer(options.dream_options)
            if self._dreamer.unavailable:
                raise FeatureUnavailable(self._dreamer.unavailable)
            self._dreamer.warm(options.dream.layer)

    def resized(self, frame: DecodedFrame) -> np.ndarray:
        """The frame at the output size."""
        rgb = frame.rgb
        if rgb.shape[:2] != self.size:
            rgb = cv2.resize(rgb, self.size[::-1], interpolation=cv2.INTER_AREA)
        return rgb

    def stylize(self, rgb: np.ndarray, seconds: float) -> np.ndarray:
        """The stylization of a resized frame with the blend of its time; thread-safe."""
        if self._dreamer is not None:
            return rgb  # dreaming feeds each frame into the next, so it happens in order in finish()
        return self.engine.stylize(
            rgb,
            self.track.at(seconds),
            model=self.model,
            strength=self.options.strength,
            keep_color=self.options.preserve_color,
            brush=self.options.brush,
        )

    def motion(self, rgb: np.ndarray) -> Motion | None:
        """What stabilizing this frame needs from the frames before it (None: not stabilizing). Call it
        in order, after the previous frame's ``finish``, while this frame is being stylized elsewhere."""
        return self._stabilizer.motion(rgb) if self._stabilizer else None

    def finish(self, rgb: np.ndarray, stylized: np.ndarray, motion: Motion | None = None) -> np.ndarray:
        """Dream (in dream mode) and stabilize (when asked, with ``motion`` if it was found already);
        must see frames in order."""
        if self._dreamer is not None and self.options.dream is not None:
            stylized = self._dreamer.dream(rgb, self._dreamed, self.options.dream, seed=self._frames_done)
            self._dreamed = stylized
        self._frames_done += 1
        if self._stabilizer is None:
            return stylized
        return self._stabilizer.blend(motion or self._stabilizer.motion(rgb), stylized)


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
        motion = stylizer.motion(rgb)  # the previous frame is finished; this one may still be stylizing
        return frame, stylizer.finish(rgb, future.result(), motion)

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


# -- output ----------------------------------------------------------------------------------------


def open_output(target: str | BinaryIO, fmt: str | None, shown_name: str) -> OutputContainer:
    try:
        return av.open(target, mode="w", format=fmt)
    except ValueError as exc:
        hint = "pass --container (mp4, matroska, mov, webm, avi)" if fmt is None else "unknown container"
        raise BadRequest(f"cannot write {shown_name}: {exc}; {hint}") from None
    except (OSError, av.FFmpegError) as exc:
        raise BadRequest(f"cannot write {shown_name}: {exc}") from None


class VideoWriter:
    """One output container: an encoded (or remuxed) video stream plus the input's audio."""

    def __init__(self, container: OutputContainer, video: av.video.stream.VideoStream) -> None:
        self.container = container
        self.video = video
        self.audio: AudioStream | None = None
        self._audio_source: AudioStream | None = None
        self._audio_copied = True

    @classmethod
    def encoding(
        cls, container: OutputContainer, codec: str, source: VideoStream, size: tuple[int, int]
    ) -> VideoWriter:
        """Encode frames with ``codec`` keeping the source's rate and time base."""
        if codec not in container.supported_codecs:
            raise BadRequest(f"container {container.format.name!r} cannot hold codec {codec!r}")
        rate = source.average_rate or source.guessed_rate or Fraction(25)
        stream = container.add_stream(codec, rate=rate)
        assert isinstance(stream, VideoStream)
        stream.height, stream.width = size
        formats = [f.name for f in stream.codec_context.codec.video_formats or ()]
        stream.pix_fmt = "yuv420p" if "yuv420p" in formats or not formats else formats[0]
        if source.time_base is not None:
            stream.codec_context.time_base = source.time_base
            stream.time_base = source.time_base
        return cls(container, stream)

    def add_audio(self, source: AudioStream) -> None:
        """Copy the audio stream when the container allows its codec, else re-encode to its default."""
        name = source.codec_context.name
        if name in self.container.supported_codecs:
            copied = self.container.add_stream_from_template(source)
            assert isinstance(copied, AudioStream)
            self.audio = copied
            self._audio_copied = True
        else:
            codec = self.container.default_audio_codec
            log.warning(
                "%s cannot hold %s audio; re-encoding to %s", self.container.format.name, name, codec
            )
            stream = self.container.add_stream(codec, rate=source.codec_context.sample_rate)
            assert isinstance(stream, AudioStream)
            self.audio = stream
            self.audio.layout = source.codec_context.layout
            self._audio_copied = False
        self._audio_source = source

    def write_audio(self, packet: av.Packet) -> None:
        if self.audio is None:
            return
        if self._audio_copied:
            packet.stream = self.audio
            self.container.mux(packet)
            return
        for frame in packet.decode():
            assert isinstance(frame, av.AudioFrame)
            frame.pts = None  # let the encoder lay samples out contiguously
            self.container.mux(self.audio.encode(frame))

    def write_frame(self, rgb: np.ndarray, pts: int, duration: int | None) -> None:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = pts
        frame.time_base = self.video.codec_context.time_base
        if duration:
            frame.duration = duration
        self.container.mux(self.video.encode(frame))

    def close(self) -> None:
        """Flush encoders and finish the container (only when everything went well)."""
        if self.video.codec_context.is_encoder:
            self.container.mux(self.video.encode(None))
        if self.audio is not None and not self._audio_copied:
            self.container.mux(self.audio.encode(None))
        self.container.close()


def _close_quietly(container: OutputContainer) -> None:
    with contextlib.suppress(Exception):
        container.close()


def frame_duration(stream: VideoStream) -> int | None:
    """The nominal duration of one frame in the stream's time base."""
    rate = stream.average_rate or stream.guessed_rate
    if not rate or stream.time_base is None:
        return None
    return max(1, round(1 / (rate * stream.time_base)))


def partial_path(dst: Path) -> Path:
    """The temporary name next to ``dst`` (same suffix, so the container can still be guessed)."""
    return dst.with_name(f".{dst.stem}.partial{dst.suffix}")


@contextlib.contextmanager
def staged_output(dst: Path) -> Iterator[Path]:
    """Yield a temporary path; rename it to ``dst`` on success, delete it on any exception."""
    if dst.is_dir():
        raise BadRequest(f"cannot write {dst}: it is a directory")
    tmp = partial_path(dst)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        tmp.replace(dst)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BadRequest(f"cannot write {dst}: {exc}") from None


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
        size = output_size(source.height, source.width, options.max_size)
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


# -- command line ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="livestyle-video", description="Stylize a video file; keeps timing and audio."
    )
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--style", help="blend, e.g. starry_night=0.7,the_scream=0.3 (default: first style)")
    parser.add_argument("--schedule", type=Path, help="keyframed blends over time (JSON or text)")
    parser.add_argument("--model", help="model name from the manifest (default: the realtime one)")
    parser.add_argument("--strength", type=float, default=1.0, help="0 = original, 1 = fully stylized")
    parser.add_argument("--preserve-color", action="store_true")
    parser.add_argument("--brush", type=float, default=1.0,
                        help=f"stroke scale in [{BRUSH_MIN}, {BRUSH_MAX}] (2: strokes twice as large, as sharp)")
    parser.add_argument("--max-size", type=int, help="longer side of the output in pixels")
    parser.add_argument("--stabilize", action="store_true", help="reduce flicker with optical flow")
    parser.add_argument("--stabilize-blend", type=float, default=StabilizeOptions.blend)
    parser.add_argument("--codec", default="libx264", help="any encoder PyAV has (default libx264)")
    parser.add_argument("--container", help="PyAV format name (default: from the output's suffix)")
    parser.add_argument("--workers", type=int, default=1, help="frames stylized at once")
    parser.add_argument("--models-dir", type=Path, help="default: LIVESTYLE_MODELS_DIR or models/")
    parser.add_argument("--engine", choices=("local", "ray"), default="local")
    parser.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    parser.add_argument("--chunks", type=int, help="Ray: number of chunks (default: 2 per CPU)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    dream = parser.add_argument_group("iterative DeepDream (--mode dream; needs the dream extra)")
    dream.add_argument("--mode", choices=("style", "dream"), default="style",
                       help="style: the ONNX network (dream styles included); dream: DeepDream on every frame")
    defaults = DreamParams()
    dream.add_argument("--dream-layer", default=defaults.layer, help=f"one of {', '.join(DREAM_LAYERS)}")
    dream.add_argument("--dream-iterations", type=int, default=4, help="gradient steps per frame and octave")
    dream.add_argument("--dream-octaves", type=int, default=2)
    dream.add_argument("--dream-feedback", type=float, default=defaults.feedback,
                       help="share of the previous dreamed frame in the next (0 = dream each frame afresh)")
    dream.add_argument("--dream-intensity", type=float, default=defaults.intensity, help="step size, (0, 1]")
    dream.add_argument("--dream-size", type=int, default=320, help="longer side dreamed (result scaled to output)")
    dream.add_argument("--dream-device", help="cpu or cuda (default: cuda when available)")
    return parser.parse_args(argv)


def options_from_args(args: argparse.Namespace) -> VideoOptions:
    if args.style and args.schedule:
        raise BadRequest("give --style or --schedule, not both")
    look = LookUpdate.parse({"weights": parse_weights_field(args.style) if args.style else None,
                             "strength": args.strength, "brush": args.brush, "model": args.model,
                             "preserve_color": args.preserve_color, "stabilize": args.stabilize}, "the flags")
    schedule = None
    if args.schedule:
        schedule = read_schedule(args.schedule)
    elif look.weights is not None:
        schedule = Schedule.constant(look.weights)
    try:
        stabilize = StabilizeOptions(blend=args.stabilize_blend) if args.stabilize else None
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    dream = None
    if args.mode == "dream":
        if args.style or args.schedule:
            raise BadRequest("--mode dream does not use --style or --schedule (dream styles go with --mode style)")
        if args.engine == "ray":
            raise BadRequest("--mode dream feeds each frame into the next, so it runs in order: use --engine local")
        dream = DreamParams(layer=args.dream_layer, iterations=args.dream_iterations, octaves=args.dream_octaves,
                            feedback=args.dream_feedback, intensity=args.dream_intensity)
        if args.dream_size < 16:
            raise BadRequest(f"--dream-size must be at least 16 px, got {args.dream_size}")
    return VideoOptions(
        dream=dream,
        dream_options=DreamOptions(device=args.dream_device, max_side_cpu=args.dream_size,
                                   max_side_gpu=args.dream_size),
        schedule=schedule,
        model=look.model,
        strength=1.0 if look.strength is None else look.strength,
        brush=1.0 if look.brush is None else look.brush,
        preserve_color=bool(look.preserve_color),
        max_size=args.max_size,
        stabilize=stabilize,
        codec=args.codec,
        container=args.container,
        workers=args.workers,
    )


def load_engine(settings: Settings) -> Engine:
    options = RuntimeOptions(
        providers=tuple(settings.providers) if settings.providers else None,
        intra_op_threads=settings.intra_op_threads,
        inter_op_threads=settings.inter_op_threads,
        spinning=settings.spinning,
    )
    return Engine.load(settings.models_dir, options, settings.default_model)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        options = options_from_args(args)
        overrides: dict[str, Any] = {"models_dir": args.models_dir} if args.models_dir else {}
        settings = Settings(**overrides)
        if args.engine == "ray":
            from service import scaleout  # Ray is an optional extra

            result = scaleout.process_video_ray(
                args.input, args.output, settings.models_dir, options, args.address, args.chunks
            )
        else:
            engine = load_engine(settings)
            with progress_bar(args.quiet) as progress:
                result = process_video(args.input, args.output, engine, options, progress)
    except KeyboardInterrupt:
        _exit(f"interrupted; {args.output} was not written", 130)
    except (ServiceError, contract.ContractError, ValueError) as exc:
        _exit(str(exc))
    if result.stopped:
        _exit(f"{args.input}: {result.stopped}; {args.output} holds the {result.frames} frames before it")


@contextlib.contextmanager
def progress_bar(quiet: bool) -> Iterator[Progress | None]:
    """A tqdm bar (frames/s and ETA) on stderr, or nothing."""
    if quiet:
        yield None
        return
    from tqdm import tqdm

    with tqdm(unit="frame", dynamic_ncols=True, smoothing=0.1, delay=0.5) as bar:

        def update(done: int, total: int | None) -> None:
            if total and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        yield update


def _exit(message: str, code: int = 2) -> NoReturn:
    sys.stderr.write(f"livestyle-video: {message}\n")
    raise SystemExit(code)


if __name__ == "__main__":
    main()
