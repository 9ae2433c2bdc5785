"""An in-process aiortc client (no browser) against the live server over loopback WebRTC."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from av import VideoFrame
from cameras import TOLERANCE, StillTrack, distance, gradient
from conftest import DREAMS, FAST, STYLES, LiveServer, build_model, reference_output

from examples.client import ClientError, ClientOptions, StyleClient
from examples.client import run as run_client
from service import contract
from service.contract import ModelEntry
from service.engine import RuntimeOptions, load_model
from service.settings import Settings


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
                ({"stabilize": "yes"}, "stabilize must be true or false"),
                ({"colour": 1}, "unknown control keys"),
                ("not json", "JSON"),
            ]:
                reply = await client.send(bad)
                assert fragment in reply.get("error", ""), (bad, reply)
            await wait_for_match(remote, scream, 10)  # the stream continues, blend unchanged

            assert await client.send({"stabilize": True}) == {"ok": True}
            await wait_for_match(remote, scream, 20)  # a still camera: steady frames are the same picture
            deadline = time.monotonic() + 3
            while not client.stats.get("stabilized") and time.monotonic() < deadline:
                await remote.recv()  # keep the stream drained (no stale frames queue up) until the stats come
            assert client.stats.get("stabilized") is True, client.stats

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


class StallingTrack(StillTrack):
    """Sends ``frames`` frames, then nothing (a frozen or vanished camera)."""

    def __init__(self, rgb: np.ndarray, frames: int) -> None:
        super().__init__(rgb)
        self.left = frames

    async def recv(self) -> VideoFrame:
        self.left -= 1
        if self.left < 0:
            await asyncio.sleep(3600)
        return await super().recv()


def test_idle_peer_is_closed(settings: Settings) -> None:
    quick = settings.model_copy(update={"idle_timeout": 1.0, "stats_interval": 0.2})
    with LiveServer(quick) as server:

        async def scenario() -> int:
            client = StyleClient(server.url)
            await client.connect(StallingTrack(gradient(), frames=5))
            peers_while_connected = httpx.get(f"{server.url}/api/health").json()["peers"]
            deadline = time.monotonic() + 8
            while httpx.get(f"{server.url}/api/health").json()["peers"] and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await client.close()
            return int(peers_while_connected)

        assert asyncio.run(scenario()) == 1
        assert httpx.get(f"{server.url}/api/health").json()["peers"] == 0


def write_clip(path: Path, rgb: np.ndarray, frames: int) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.height, stream.width = rgb.shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 4_000_000
        for _ in range(frames):
            container.mux(stream.encode(VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def test_example_client_records_stylized_video_and_switches_styles(live_server: LiveServer, tmp_path: Path) -> None:
    source = gradient()
    clip = write_clip(tmp_path / "in.mp4", source, frames=75)
    output = tmp_path / "out.mp4"
    options = ClientOptions(
        url=live_server.url,
        input=clip,
        output=output,
        weights=({"starry_night": 1.0}, {"the_scream": 1.0}),
        switch_every=0.8,
    )
    asyncio.run(run_client(options))
    assert output.is_file() and not list(tmp_path.glob("*.partial.*"))
    with av.open(str(output)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) > 20
    starry = reference_output(source, contract.one_hot(0, 3)).astype(np.float32)
    scream = reference_output(source, contract.one_hot(1, 3)).astype(np.float32)
    assert np.abs(frames[3] - starry).mean() < TOLERANCE
    assert np.abs(frames[-1] - scream).mean() < TOLERANCE


def test_a_live_stream_keeps_its_blend_by_name_through_model_swaps(one_peer_server: LiveServer, tmp_path: Path) -> None:
    """A style is added (the model grows a row) and removed again while a peer streams: no frame is lost, the
    blend keeps its styles by name, and the new style is usable at once."""
    engine = one_peer_server.app.state.services.engine
    build_model(tmp_path / "grown.onnx", len(STYLES) + 1)
    entry = ModelEntry(
        FAST,
        "grown.onnx",
        contract.sha256_file(tmp_path / "grown.onnx"),
        "realtime",
        (*STYLES, "added_one"),
        4,
        dreams=DREAMS,
    )
    grown = load_model(tmp_path / "grown.onnx", entry, RuntimeOptions(), ["CPUExecutionProvider"])
    source = gradient()
    half = np.zeros((1, 4), np.float32)
    half[0, 1] = half[0, 3] = 0.5

    async def scenario() -> None:
        client = StyleClient(one_peer_server.url)
        remote = await client.connect(StillTrack(source), weights={"the_scream": 1})
        try:
            await wait_for_match(remote, reference_output(source, contract.one_hot(1, 3)), 60)
            original = engine.swap(grown)
            await wait_for_match(remote, reference_output(source, contract.one_hot(1, 4)), 20)
            assert await client.send({"weights": {"the_scream": 1, "added_one": 1}}) == {"ok": True}
            await wait_for_match(remote, reference_output(source, half), 20)
            assert original is not None
            engine.swap(original)  # removed again: its share goes, the scream stays
            await wait_for_match(remote, reference_output(source, contract.one_hot(1, 3)), 20)
            deadline = time.monotonic() + 3
            while not client.stats and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert client.stats.get("failures", 0) == 0, client.stats
        finally:
            await client.close()

    asyncio.run(scenario())
