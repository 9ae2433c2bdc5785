"""Video containers with PyAV: decode frames with their timing, encode them with the audio copied, and stage
the output under a temporary name that is renamed only when complete (nothing half-written)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.video.stream import VideoStream

from service import contract
from service.errors import BadRequest, PayloadTooLarge, UnsupportedMedia

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodedFrame:
    pts: int
    seconds: float  # from the stream's first frame: what schedules are timed against
    rgb: np.ndarray


# -- input -----------------------------------------------------------------------------------------


# Demuxers an uploaded file may use: real video containers only. Playlists (hls, concat), image sequences and
# raw devices are refused before their header is read, whatever the file is called.
UPLOAD_FORMATS = (
    "mov,mp4,m4a,3gp,3g2,mj2",
    "matroska,webm",
    "avi",
    "mpegts",
    "flv",
    "mpeg",
    "ogg",
    "asf",
    "gif",
    "h264",
    "hevc",
    "m4v",
    "mjpeg",
    "ivf",
    "nut",
    "yuv4mpegpipe",
    "dv",
    "mxf",
)


def open_input(path: Path, shown: str | None = None, formats: tuple[str, ...] | None = None) -> InputContainer:
    """Open a file that holds a video stream; UnsupportedMedia naming the file (or ``shown``: what a client is
    told instead of a server path) otherwise. ``formats``: the demuxers allowed (FFmpeg's format_whitelist)."""
    name = shown or str(path)
    if not path.is_file():
        raise BadRequest(f"{name}: no such file")
    options = {"format_whitelist": ",".join(formats)} if formats else None
    try:
        container = av.open(str(path), mode="r", container_options=options)
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        reason = "" if shown else f" ({exc})"
        raise UnsupportedMedia(
            f"{name}: not a video file this server reads (MP4, MOV, MKV, WebM, AVI, ...){reason}"
        ) from None
    if not container.streams.video:
        container.close()
        raise UnsupportedMedia(f"{name}: contains no video stream")
    return container


@dataclass(frozen=True)
class VideoLimits:
    """How large a video a server takes: pixels per frame, frames, seconds."""

    max_pixels: int
    max_frames: int
    max_seconds: float


def probe_upload(path: Path, limits: VideoLimits) -> None:
    """Check an upload before it is queued: an allowed container with a video stream within ``limits``
    (from the header: nothing is decoded); 415 or 413 with the reason, never a server path."""
    with contextlib.closing(open_input(path, "the upload", UPLOAD_FORMATS)) as container:
        video = container.streams.video[0]
        width, height = int(video.codec_context.width or 0), int(video.codec_context.height or 0)
        if width * height > limits.max_pixels:
            raise PayloadTooLarge(f"the video is {width}x{height}; the limit is {limits.max_pixels} pixels a frame")
        seconds = (
            float(video.duration * video.time_base)
            if video.duration and video.time_base
            else (container.duration or 0) / 1_000_000
        )
        if seconds > limits.max_seconds:
            raise PayloadTooLarge(f"the video lasts {seconds:.0f} s; the limit is {limits.max_seconds:.0f} s")
        rate = float(video.average_rate or video.guessed_rate or 0)
        frames = int(video.frames or 0) or int(seconds * rate)
        if frames > limits.max_frames:
            raise PayloadTooLarge(f"the video has {frames} frames; the limit is {limits.max_frames}")


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
                    yield DecodedFrame(
                        pts, self.last_seconds, upright(frame.to_ndarray(format="rgb24"), frame.rotation)
                    )
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


def upright(rgb: np.ndarray, rotation: float) -> np.ndarray:
    """A decoded picture turned as its stream's display matrix says (phone clips are stored sideways):
    ``rotation`` in degrees counterclockwise, PyAV's ``VideoFrame.rotation``."""
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def display_rotation(path: Path) -> int:
    """The rotation of a file's first video frame (0 when none, or when it cannot be read)."""
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                return int(round(frame.rotation))
    except (av.FFmpegError, ValueError):
        pass
    return 0


def display_dims(path: Path, stream: VideoStream) -> tuple[int, int]:
    """Height and width of the stream as it is shown (swapped for a quarter turn)."""
    height, width = int(stream.height), int(stream.width)
    return (width, height) if display_rotation(path) % 180 else (height, width)


def output_size(height: int, width: int, max_size: int | None) -> tuple[int, int]:
    """Fit within ``max_size`` and round down to even sides (4:2:0 chroma needs them)."""
    if max_size is not None:
        height, width = contract.fit_within(height, width, max_size)
    return max(2, height - height % 2), max(2, width - width % 2)


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
            log.warning("%s cannot hold %s audio; re-encoding to %s", self.container.format.name, name, codec)
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
