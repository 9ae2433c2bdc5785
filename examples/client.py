"""Example app client on aiortc: stream a video file, change the blend over ``control``, record.

    python -m examples.client --url http://127.0.0.1:8000 --input in.mp4 --output out.mp4 \\
        --weights starry_night=1 --weights the_scream=1 --switch-every 2 [--token TOKEN]

Each ``--weights`` is applied in turn, ``--switch-every`` seconds apart. ``StyleClient`` is the
reusable part: connect a track, send control messages (awaiting each reply), receive frames.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer, MediaRecorder
from aiortc.mediastreams import MediaStreamTrack

from service.blend import parse_weights_text
from service.errors import BadRequest
from service.live.signalling import CONTROL_LABEL, loopback_host_addresses, rtc_configuration

log = logging.getLogger(__name__)


class ClientError(RuntimeError):
    """The server refused the connection or a control message."""


class StyleClient:
    """One peer connection to a livestyle server."""

    def __init__(self, url: str, ice_servers: list[str] | None = None, token: str | None = None) -> None:
        """``token``: the server's LIVESTYLE_API_TOKEN, when it has one."""
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.pc = RTCPeerConnection(rtc_configuration(ice_servers or []))
        self.channel = self.pc.createDataChannel(CONTROL_LABEL)
        self.peer_id: str | None = None
        self.replica: str | None = None  # the worker holding the stream (livestyle-serve --engine ray)
        self.session: str | None = None  # its broadcast session: others watch it with WHEP at /api/whep/{session}
        self.draining = False  # the worker said it is shutting down: the stream goes on, reconnect when it ends
        self.stats: dict[str, Any] = {}
        self.offer_seconds = float("nan")  # how long the server took to answer the offer
        self._replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._remote: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
        self._open = asyncio.Event()
        self._send_lock = asyncio.Lock()

        @self.channel.on("open")
        def on_open() -> None:
            self._open.set()

        @self.channel.on("message")
        def on_message(raw: str | bytes) -> None:
            message = json.loads(raw)
            if "stats" in message:
                self.stats = message["stats"]
            elif "draining" in message:
                self.draining = True
            else:
                self._replies.put_nowait(message)

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video" and not self._remote.done():
                self._remote.set_result(track)

    async def connect(
        self, track: MediaStreamTrack, model: str | None = None, weights: dict[str, float] | None = None
    ) -> MediaStreamTrack:
        """Send ``track``, return the stylized track once the control channel is open."""
        self.pc.addTrack(track)
        await self.pc.setLocalDescription(await self.pc.createOffer())  # gathers all candidates
        offer: dict[str, Any] = {"sdp": self.pc.localDescription.sdp, "type": self.pc.localDescription.type}
        if model is not None:
            offer["model"] = model
        if weights is not None:
            offer["weights"] = weights
        async with httpx.AsyncClient(timeout=30, headers=self.headers) as http:
            sent = time.perf_counter()
            response = await http.post(f"{self.url}/api/offer", json=offer)
            self.offer_seconds = time.perf_counter() - sent
        if response.status_code != 200:
            raise ClientError(f"offer refused ({response.status_code}): {response.json().get('detail')}")
        answer = response.json()
        self.peer_id, self.replica, self.session = answer["peer_id"], answer.get("replica"), answer.get("session")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        remote = await asyncio.wait_for(self._remote, 20)
        await asyncio.wait_for(self._open.wait(), 20)
        return remote

    async def send(self, message: dict[str, Any] | str) -> dict[str, Any]:
        """Send one control message and return the server's reply (``ok`` or ``error``)."""
        async with self._send_lock:
            self.channel.send(message if isinstance(message, str) else json.dumps(message))
            return await asyncio.wait_for(self._replies.get(), 10)

    async def close(self) -> None:
        await self.pc.close()


@dataclass(frozen=True)
class ClientOptions:
    url: str
    input: Path
    output: Path
    weights: tuple[dict[str, float], ...]
    model: str | None = None
    strength: float | None = None
    switch_every: float = 2.0
    duration: float | None = None
    ice_loopback: bool = False
    token: str | None = None


async def run(options: ClientOptions) -> None:
    """Stream ``options.input`` through the server and record the result to ``options.output``."""
    player = MediaPlayer(str(options.input))
    if player.video is None:
        raise ClientError(f"{options.input}: no video stream")
    client = StyleClient(options.url, token=options.token)
    partial = options.output.with_name(f"{options.output.stem}.partial{options.output.suffix}")
    recorder = MediaRecorder(str(partial))
    try:
        first = options.weights[0] if options.weights else None
        remote = await client.connect(player.video, model=options.model, weights=first)
        recorder.addTrack(remote)
        await recorder.start()
        if options.strength is not None:
            await _control(client, {"strength": options.strength})
        loop = asyncio.get_running_loop()
        started = loop.time()
        schedule = list(options.weights[1:])
        while player.video.readyState == "live":
            if options.duration is not None and loop.time() - started >= options.duration:
                break
            await asyncio.sleep(options.switch_every if schedule else 0.2)
            if schedule:
                await _control(client, {"weights": schedule.pop(0)})
        log.info("server stats: %s", client.stats)
    finally:
        await recorder.stop()
        await client.close()
        player.video.stop()
    partial.replace(options.output)
    log.info("wrote %s", options.output)


async def _control(client: StyleClient, message: dict[str, Any]) -> None:
    reply = await client.send(message)
    if "error" in reply:
        raise ClientError(f"server refused {message}: {reply['error']}")
    log.info("applied %s", message)


def parse_args(argv: list[str] | None) -> ClientOptions:
    parser = argparse.ArgumentParser(prog="python -m examples.client", description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--input", type=Path, required=True, help="a video file (anything FFmpeg reads)")
    parser.add_argument("--output", type=Path, required=True, help="where to record (.mp4, .webm, ...)")
    parser.add_argument("--weights", action="append", default=[], help="style=w[,style=w]; repeatable")
    parser.add_argument("--model")
    parser.add_argument("--strength", type=float)
    parser.add_argument("--switch-every", type=float, default=2.0, help="seconds between --weights")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--ice-loopback", action="store_true", help="127.0.0.1 candidates only (tests)")
    parser.add_argument(
        "--token",
        default=os.environ.get("LIVESTYLE_API_TOKEN"),
        help="the server's API token (default: $LIVESTYLE_API_TOKEN)",
    )
    args = parser.parse_args(argv)
    try:
        weights = tuple(parse_weights_text(text) for text in args.weights)
    except BadRequest as exc:
        parser.error(str(exc))
    if not args.input.is_file():
        parser.error(f"{args.input}: no such file")
    return ClientOptions(
        args.url,
        args.input,
        args.output,
        weights,
        args.model,
        args.strength,
        args.switch_every,
        args.duration,
        args.ice_loopback,
        args.token,
    )


def main(argv: list[str] | None = None) -> None:
    options = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with loopback_host_addresses() if options.ice_loopback else contextlib.nullcontext():
        try:
            asyncio.run(run(options))
        except (ClientError, httpx.HTTPError) as exc:
            sys.stderr.write(f"livestyle client: {exc}\n")
            raise SystemExit(2) from None


if __name__ == "__main__":
    main()
