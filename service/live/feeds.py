"""One encode per codec for every WHEP viewer of a stream: an :class:`EncodedFeed` encodes the painted frames once
and hands the same encoded packets to each viewer's :class:`PacketTrack`, which aiortc's sender only packetizes
(a sender given ``av.Packet`` instead of frames skips its own encoder).

The trade: one bitrate for all viewers of a codec (no per-viewer congestion control from REMB), and a viewer that
lost a packet beyond NACK's reach waits for the next keyframe (every ``keyframe_seconds``) instead of asking for
one. A viewer joins on a keyframe, asked for when it joins; a viewer whose queue backs up skips to the next one.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import multiprocessing
import time
from collections.abc import Callable
from typing import cast

import av
from aiortc.codecs.vpx import number_of_threads
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType, VideoFrame

from service.live.offers import Codec

log = logging.getLogger(__name__)

QUEUE_LIMIT = 30  # packets a viewer may lag (a second at 30 fps) before it skips to the next keyframe


class PacketTrack(MediaStreamTrack):
    """One viewer's copy of a feed: the feed's packets from the keyframe after it joined, newest last."""

    kind = "video"

    def __init__(self, feed: EncodedFeed) -> None:
        super().__init__()
        self.feed = feed
        self.queue: asyncio.Queue[av.Packet | None] = asyncio.Queue()
        self.waiting_for_key = True
        self.skipped = 0  # packets dropped while the viewer lagged or waited for a keyframe
        self.sent = 0  # packets its sender took

    def put(self, packet: av.Packet) -> None:
        if self.waiting_for_key and not packet.is_keyframe:
            self.skipped += 1
            return
        if self.queue.qsize() >= QUEUE_LIMIT:  # a P-frame dropped breaks every frame after it: skip to a keyframe
            self.skipped += self.queue.qsize()
            while not self.queue.empty():
                self.queue.get_nowait()
            self.waiting_for_key = True
            self.feed.request_keyframe()
            if not packet.is_keyframe:
                return
        self.waiting_for_key = False
        self.queue.put_nowait(packet)

    async def recv(self) -> av.Packet:  # type: ignore[override]  # a sender packs av.Packet without encoding
        if self.readyState != "live":
            raise MediaStreamError
        packet = await self.queue.get()
        if packet is None:
            self.stop()
            raise MediaStreamError
        self.sent += 1
        return packet

    def end(self) -> None:
        """The feed ended: the viewer's sender stops after what it already queued."""
        self.queue.put_nowait(None)

    def stop(self) -> None:
        super().stop()
        self.feed.leave(self)


class EncodedFeed:
    """The painted frames of ``source`` encoded once in ``codec`` for every :class:`PacketTrack` that joined.

    ``source`` is the feed's own subscription to the stream's relay (newest frame wins); it is read only while
    someone watches, and ``on_idle`` is told when the last viewer leaves (the owner drops the feed)."""

    def __init__(
        self,
        source: MediaStreamTrack,
        codec: Codec,
        bitrate: int,
        keyframe_seconds: float,
        on_idle: Callable[[EncodedFeed], None],
    ) -> None:
        self.source, self.codec, self.bitrate = source, codec, bitrate
        self.keyframe_seconds = keyframe_seconds
        self.on_idle = on_idle
        self.viewers: set[PacketTrack] = set()
        self.encoder: VideoCodecContext | None = None
        self.keyframe_wanted = True
        self.last_keyframe = 0.0
        self.encoded = 0  # frames encoded: one per painted frame, however many watch
        self.task: asyncio.Task[None] | None = None

    def join(self) -> PacketTrack:
        track = PacketTrack(self)
        self.viewers.add(track)
        self.request_keyframe()
        if self.task is None:
            self.task = asyncio.ensure_future(self._run())
        return track

    def leave(self, track: PacketTrack) -> None:
        if track not in self.viewers:
            return
        self.viewers.discard(track)
        if not self.viewers:
            self.close()
            self.on_idle(self)

    def request_keyframe(self) -> None:
        self.keyframe_wanted = True

    def close(self) -> None:
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
        self.source.stop()
        for track in list(self.viewers):
            track.end()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.viewers:
                frame = await self.source.recv()
                assert isinstance(frame, VideoFrame)
                now = time.monotonic()
                key = self.keyframe_wanted or now - self.last_keyframe >= self.keyframe_seconds
                self.keyframe_wanted = False
                packet = await loop.run_in_executor(None, self._encode, frame, key)
                if packet is None:
                    continue
                if packet.is_keyframe:
                    self.last_keyframe = now
                for track in list(self.viewers):
                    track.put(packet)
        except MediaStreamError:  # the stream ended: its viewers' senders stop
            for track in list(self.viewers):
                track.end()
        except Exception:  # an encoder fault ends this feed's viewers, never the session or anyone else
            log.exception("encoding for %d %s viewers failed; ending their streams", len(self.viewers), self.codec)
            for track in list(self.viewers):
                track.end()

    def _encode(self, frame: VideoFrame, key: bool) -> av.Packet | None:
        """One frame encoded (in a worker thread); a new encoder, so a keyframe, when the size changes."""
        if self.encoder is None or (frame.width, frame.height) != (self.encoder.width, self.encoder.height):
            self.encoder = self._open(frame.width, frame.height)
            key = True
        frame.pict_type = PictureType.I if key else PictureType.NONE
        packets = self.encoder.encode(frame)
        self.encoded += 1
        if not packets:
            return None
        packet = av.Packet(b"".join(bytes(p) for p in packets))
        packet.pts = frame.pts
        if frame.time_base is not None:
            packet.time_base = frame.time_base
        packet.is_keyframe = any(p.is_keyframe for p in packets)
        return packet

    def _open(self, width: int, height: int) -> VideoCodecContext:
        """A real-time encoder with aiortc's own settings for the codec (its senders decode-test them daily)."""
        rate = str(self.bitrate)
        if self.codec == "VP8":
            encoder = cast(VideoCodecContext, av.CodecContext.create("libvpx", "w"))
            encoder.options = {
                "bufsize": rate,
                "minrate": rate,
                "maxrate": rate,  # minrate = maxrate = bit_rate: constant bitrate
                "cpu-used": "-6",
                "deadline": "realtime",
                "lag-in-frames": "0",
                "noise-sensitivity": "4",
                "overshoot-pct": "15",
                "partitions": "0",
                "static-thresh": "1",
                "undershoot-pct": "100",
            }
            encoder.qmin, encoder.qmax = 2, 56
            # libvpx's own threads would fight the painting for the cores: as many as aiortc gives a frame this size
            encoder.thread_count = number_of_threads(width * height, multiprocessing.cpu_count())
        else:
            encoder = cast(VideoCodecContext, av.CodecContext.create("libx264", "w"))
            encoder.framerate = fractions.Fraction(30, 1)
            encoder.time_base = fractions.Fraction(1, 30)
            encoder.options = {"level": "31", "tune": "zerolatency"}
            encoder.profile = "Baseline"
        encoder.width, encoder.height = width, height
        encoder.bit_rate = self.bitrate
        encoder.pix_fmt = "yuv420p"
        encoder.gop_size = 3000  # keyframes come when asked for and every keyframe_seconds, not by count
        return encoder
