"""One encode for many viewers: the packets each viewer's track hands its sender, from a keyframe on."""

from __future__ import annotations

import asyncio
import fractions

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.video.frame import VideoFrame

from service.live.feeds import QUEUE_LIMIT, EncodedFeed, PacketTrack
from service.live.offers import Codec


class Frames(MediaStreamTrack):
    """A moving test picture at 30 fps, as many frames as asked for; then it ends."""

    kind = "video"

    def __init__(self, count: int, size: tuple[int, int] = (64, 48)) -> None:
        super().__init__()
        self.count, self.size, self.sent = count, size, 0

    async def recv(self) -> VideoFrame:
        if self.sent >= self.count:
            raise MediaStreamError
        await asyncio.sleep(0.001)
        w, h = self.size
        picture = np.full((h, w, 3), (self.sent * 7) % 256, np.uint8)
        picture[:, self.sent % w] = 255
        frame = VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base = self.sent * 3000, fractions.Fraction(1, 90000)
        self.sent += 1
        return frame


def feed(source: MediaStreamTrack, codec: Codec = "VP8", idle: list[EncodedFeed] | None = None) -> EncodedFeed:
    return EncodedFeed(source, codec, 500_000, 60.0, (idle if idle is not None else []).append)


async def take(track: PacketTrack, count: int) -> list[av.Packet]:
    return [await asyncio.wait_for(track.recv(), 10) for _ in range(count)]


@pytest.mark.parametrize("codec", ["VP8", "H264"])
def test_viewers_share_every_packet_and_each_starts_on_a_keyframe(codec: Codec) -> None:
    async def scenario() -> None:
        source = Frames(40)
        shared = feed(source, codec)
        first = shared.join()
        early = await take(first, 10)
        second = shared.join()  # joins late: asks for a keyframe and starts on it
        late = await take(second, 5)
        assert early[0].is_keyframe and late[0].is_keyframe
        later = await take(first, 25)
        assert any(p is late[0] for p in early + later)  # the very same packet, encoded once
        decoder = av.CodecContext.create("libvpx" if codec == "VP8" else "h264", "r")
        pictures = [f for p in late for f in decoder.decode(p)]
        assert len(pictures) == 5 and pictures[0].width == 64  # a late viewer decodes from its first packet
        assert shared.encoded <= source.sent  # one encode per frame, however many watch

    asyncio.run(scenario())


def test_the_last_viewer_out_stops_the_encode_and_an_ended_stream_ends_the_viewers() -> None:
    async def scenario() -> None:
        idle: list[EncodedFeed] = []
        source = Frames(1000)
        shared = feed(source, idle=idle)
        one, two = shared.join(), shared.join()
        await take(one, 3)
        one.stop()
        assert idle == [] and shared.viewers == {two}
        two.stop()
        assert idle == [shared] and source.readyState == "ended"
        ending = feed(Frames(3))
        viewer = ending.join()
        packets = 0
        with pytest.raises(MediaStreamError):
            while True:
                await asyncio.wait_for(viewer.recv(), 10)
                packets += 1
        assert packets == 3

    asyncio.run(scenario())


def test_a_viewer_that_lags_skips_to_the_next_keyframe_and_asks_for_one() -> None:
    async def scenario() -> None:
        shared = feed(Frames(0))
        track = PacketTrack(shared)
        shared.keyframe_wanted = False

        def packet(key: bool) -> av.Packet:
            p = av.Packet(b"x")
            p.is_keyframe = key
            return p

        track.put(packet(False))
        assert track.queue.empty() and track.skipped == 1  # joins on a keyframe only
        for index in range(QUEUE_LIMIT):
            track.put(packet(index == 0))
        assert track.queue.qsize() == QUEUE_LIMIT and not shared.keyframe_wanted
        track.put(packet(False))  # one too many: a gap would break every frame after it
        assert track.queue.empty() and shared.keyframe_wanted and track.waiting_for_key
        key = packet(True)
        track.put(key)
        assert await track.recv() is key

    asyncio.run(scenario())


def test_an_encoder_fault_ends_the_feeds_viewers_and_nothing_else() -> None:
    class Broken(EncodedFeed):
        def _encode(self, frame: VideoFrame, key: bool) -> av.Packet | None:
            raise av.error.ValueError(22, "the encoder broke")

    async def scenario() -> None:
        source = Frames(100)
        viewer = Broken(source, "VP8", 500_000, 60.0, lambda feed: None).join()
        with pytest.raises(MediaStreamError):
            await asyncio.wait_for(viewer.recv(), 10)

    asyncio.run(scenario())
