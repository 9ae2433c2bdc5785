"""An in-process aiortc client (no browser) against the live server over loopback WebRTC."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from aiortc import VideoStreamTrack
from av import VideoFrame
from conftest import LiveServer, reference_output

from service import contract
from service.client import ClientError, StyleClient
from service.settings import Settings

# VP8 round trips move colours by tens of levels at worst; the mean over a smooth frame moves little
TOLERANCE = 14.0


def gradient(height: int = 240, width: int = 320) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([x / width, y / height, 0.2 + 0.6 * (x + y) / (width + height)], axis=-1)
    return (rgb * 255).astype(np.uint8)


class StillTrack(VideoStreamTrack):
    """A 30 fps camera that always shows the same picture."""

    def __init__(self, rgb: np.ndarray) -> None:
        super().__init__()
        self.rgb = rgb

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame.from_ndarray(self.rgb, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


def distance(frame: VideoFrame, expected: np.ndarray) -> float:
    got = frame.to_ndarray(format="rgb24").astype(np.float32)
    assert got.shape == expected.shape
    return float(np.abs(got - expected).mean())


async def wait_for_match(track: object, expected: np.ndarray, frames: int) -> int:
    """Index of the first of ``frames`` received frames within TOLERANCE of ``expected``."""
    for index in range(frames):
        frame = await track.recv()  # type: ignore[attr-defined]
        if distance(frame, expected) < TOLERANCE:
            return index
    raise AssertionError(f"no frame within {TOLERANCE} of the expected picture in {frames} frames")


@pytest.fixture
def one_peer_server(settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(settings.model_copy(update={"max_peers": 1})) as server:
        yield server


def test_stream_is_stylized_and_follows_control_messages(one_peer_server: LiveServer) -> None:
    source = gradient()
    starry = reference_output(source, contract.one_hot(0, 3))
    scream = reference_output(source, contract.one_hot(1, 3))
    assert np.abs(starry.astype(np.float32) - source).mean() > 5 * TOLERANCE  # the styles are far apart

    async def scenario() -> None:
        client = StyleClient(one_peer_server.url)
        remote = await client.connect(StillTrack(source), weights={"starry_night": 1})
        try:
            await wait_for_match(remote, starry, 60)  # stylized, not the camera picture
            assert await client.send({"weights": {"the_scream": 1}}) == {"ok": True}
            # the eased change lands within a few frames (ease_frames=3 plus frames in flight)
            assert await wait_for_match(remote, scream, 20) <= 15

            for bad, fragment in [
                ({"weights": {"nope": 1}}, "unknown styles"),
                ({"weights": {"the_scream": float("nan")}}, "finite"),
                ({"weights": {"the_scream": 0}}, "positive"),
                ({"strength": 3}, "strength"),
                ({"model": "nope"}, "unknown model"),
                ({"mode": "sepia"}, "mode"),
                ({"colour": 1}, "unknown control keys"),
                ("not json", "JSON"),
            ]:
                reply = await client.send(bad)
                assert fragment in reply.get("error", ""), (bad, reply)
            await wait_for_match(remote, scream, 10)  # the stream continues, blend unchanged

            assert (await client.send({"mode": "passthrough", "id": 7})) == {"id": 7, "ok": True}
            await wait_for_match(remote, source, 20)

            # a second peer is refused while the only slot is taken
            second = StyleClient(one_peer_server.url)
            with pytest.raises(ClientError, match="503"):
                await second.connect(StillTrack(source))
            await second.close()

            deadline = time.monotonic() + 3
            while not client.stats and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert client.stats["fps_out"] > 0 and "infer_ms_p90" in client.stats
        finally:
            await client.close()

    asyncio.run(scenario())
    deadline = time.monotonic() + 5
    while httpx.get(f"{one_peer_server.url}/api/health").json()["peers"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert httpx.get(f"{one_peer_server.url}/api/health").json()["peers"] == 0
