"""``livestyle-video --engine ray``: split a video at keyframes, stylize the chunks in Ray tasks, and
join their encoded packets into one file without re-encoding.

Each task decodes its chunk from the nearest keyframe, stylizes it with the same code as the
in-process engine and encodes it on its own; every chunk starts on an IDR frame, so the joined
stream needs no re-encoding. With stabilization a chunk first replays ``overlap`` frames before
its border (their output is dropped) to rebuild the stabilizer's state, which decays geometrically.
The input file and the models folder must be readable at the same paths on every Ray node.
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.stream import VideoStream

from service.engine import Engine, RuntimeOptions
from service.errors import BadRequest
from service.video.media import (
    DecodedFrame,
    FrameReader,
    VideoWriter,
    display_dims,
    frame_duration,
    open_input,
    open_output,
    output_size,
    staged_output,
)
from service.video.pipeline import FrameStylizer, VideoOptions, VideoResult

log = logging.getLogger(__name__)

SEGMENT_FORMAT = "mp4"  # keeps the stream time base; timestamps survive the round trip


@dataclass(frozen=True)
class Chunk:
    """Frames with ``start_pts <= pts < end_pts``; decoding starts at keyframe ``seek_pts``."""

    index: int
    seek_pts: int
    warmup_pts: int  # first frame fed to the stylizer (== start_pts without stabilization)
    start_pts: int
    end_pts: int | None


@dataclass(frozen=True)
class Segment:
    index: int
    data: bytes
    frames: int


def scan_video(path: Path) -> tuple[list[int], set[int], int]:
    """Presentation timestamps of every video packet (sorted), the keyframes', and the header's count."""
    with contextlib.closing(open_input(path)) as container:
        stream = container.streams.video[0]
        pts: list[int] = []
        keyframes: set[int] = set()
        try:
            for packet in container.demux(stream):
                if packet.pts is None:
                    continue
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keyframes.add(packet.pts)
        except av.FFmpegError as exc:
            log.warning("%s: demuxing stopped after %d packets (%s)", path, len(pts), exc)
        return sorted(pts), keyframes, int(stream.frames or 0)


def plan_chunks(pts: list[int], keyframes: set[int], chunks: int, overlap: int) -> list[Chunk]:
    """At most ``chunks`` chunks of about equal length, each starting on a keyframe."""
    key_indices = [i for i, p in enumerate(pts) if p in keyframes] or [0]
    starts = {0}
    for k in range(1, chunks):
        target = k * len(pts) // chunks
        nearest = min(key_indices, key=lambda i: abs(i - target))
        starts.add(nearest)
    ordered = sorted(starts)
    plan = []
    for n, start in enumerate(ordered):
        end = ordered[n + 1] if n + 1 < len(ordered) else None
        warmup = max(0, start - overlap)
        seek = key_indices[max(0, bisect.bisect_right(key_indices, warmup) - 1)]
        plan.append(Chunk(n, pts[seek], pts[warmup], pts[start], pts[end] if end is not None else None))
    return plan


def render_chunk(src: str, models_dir: str, options: VideoOptions, chunk: Chunk) -> Segment:
    """Stylize one chunk and encode it into an in-memory segment (runs in a Ray task)."""
    engine = Engine.load(Path(models_dir), RuntimeOptions())
    with contextlib.closing(open_input(Path(src))) as container:
        source = container.streams.video[0]
        size = output_size(*display_dims(Path(src), source), options.max_size)
        stylizer = FrameStylizer(engine, options, size)
        reader = FrameReader(container, with_audio=False, seek_pts=chunk.seek_pts, end_pts=chunk.end_pts)
        frames = (f for f in reader.items() if isinstance(f, DecodedFrame) and f.pts >= chunk.warmup_pts)
        kept = ((f, out) for f, out in _stylized(frames, stylizer) if f.pts >= chunk.start_pts)
        data, count = encode_segment(kept, source, options.codec, size)
    return Segment(chunk.index, data, count)


def _stylized(frames: Iterator[DecodedFrame], stylizer: FrameStylizer) -> Iterator[tuple[DecodedFrame, np.ndarray]]:
    for frame in frames:  # one chunk per core: its frames run one after another
        rgb = stylizer.resized(frame)
        yield frame, stylizer.finish(rgb, stylizer.stylize(rgb, frame.seconds), seconds=frame.seconds)


def encode_segment(
    frames: Iterator[tuple[DecodedFrame, np.ndarray]],
    source: av.video.stream.VideoStream,
    codec: str,
    size: tuple[int, int],
) -> tuple[bytes, int]:
    """Encode frames into an in-memory container; (bytes, frames)."""
    buffer = io.BytesIO()
    container = av.open(buffer, mode="w", format=SEGMENT_FORMAT)
    writer = VideoWriter.encoding(container, codec, source, size)
    duration = frame_duration(source)
    count = 0
    for frame, out in frames:
        writer.write_frame(out, frame.pts, duration)
        count += 1
    writer.close()
    return buffer.getvalue(), count


def process_video_ray(
    src: Path,
    dst: Path,
    models_dir: Path,
    options: VideoOptions,
    address: str | None = None,
    chunks: int | None = None,
    overlap: int = 12,
) -> VideoResult:
    """The Ray counterpart of ``video.process_video`` (a local Ray starts when ``address`` is None)."""
    import ray

    pts, keyframes, expected = scan_video(src)
    if not pts:
        raise BadRequest(f"{src}: no video frames could be decoded")
    FrameStylizer(Engine.load(models_dir, RuntimeOptions()), options, (16, 16))  # fail fast: names, styles
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    plan = plan_chunks(pts, keyframes, chunks or 2 * cpus, overlap if options.look.stabilize else 0)
    task = ray.remote(num_cpus=1)(render_chunk)
    refs = [task.remote(str(src), str(models_dir), options, chunk) for chunk in plan]
    segments = sorted(ray.get(refs), key=lambda s: s.index)
    log.info("%s: %d frames in %d chunks", src, sum(s.frames for s in segments), len(segments))
    join_segments(src, dst, segments, options)
    done = sum(s.frames for s in segments)
    stopped = None
    if expected and done < expected:
        stopped = f"the stream ends at frame {done} of {expected}; the file is truncated or damaged"
    return VideoResult(done, stopped)


def join_segments(src: Path, dst: Path, segments: list[Segment], options: VideoOptions) -> None:
    """Remux the segments' packets (no re-encoding) with the input's audio into ``dst``."""
    with contextlib.ExitStack() as stack:
        parts = [stack.enter_context(av.open(io.BytesIO(s.data), mode="r")) for s in segments if s.frames]
        source = stack.enter_context(contextlib.closing(open_input(src)))
        tmp = stack.enter_context(staged_output(dst))
        output = open_output(str(tmp), options.container, str(dst))
        video = output.add_stream_from_template(parts[0].streams.video[0])
        assert isinstance(video, VideoStream)
        writer = VideoWriter(output, video)
        audio = source.streams.audio[0] if source.streams.audio else None
        if audio is not None:
            writer.add_audio(audio)
        streams = [_packets(part.demux(part.streams.video[0])) for part in parts]
        if audio is not None:
            streams.append(_packets(source.demux(audio)))
        for packet in heapq.merge(*streams, key=_seconds):
            if packet.stream.type == "video":
                packet.stream = writer.video
                output.mux(packet)
            else:
                writer.write_audio(packet)
        writer.close()


def _seconds(packet: av.Packet) -> float:
    assert packet.dts is not None and packet.time_base is not None
    return float(packet.dts * packet.time_base)


def _packets(packets: Iterator[av.Packet]) -> Iterator[av.Packet]:
    return (p for p in packets if p.dts is not None)
