"""WebRTC signalling (POST /api/offer, WHIP ingest), the peer registry, and the ``control`` data channel.

Each peer's camera is painted once by one :class:`StylizedTrack` behind an aiortc ``MediaRelay``: the page's own
return video is one subscriber of that relay, and WHEP viewers (service/live/broadcast.py) are more."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import aioice.ice
from aiortc import RTCConfiguration, RTCDataChannel, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from pydantic import BaseModel, Field

from service.dream import Dreamer, DreamOptions
from service.engine import Engine
from service.errors import BadRequest, ServiceBusy, ServiceError, TooManyRequests
from service.live.controls import Controls, apply_control, apply_look
from service.live.offers import answer_video_only, check_codecs, check_sdp
from service.live.track import EncoderFrames, ResolutionGovernor, StylizedTrack
from service.look import LookUpdate
from service.settings import Settings

log = logging.getLogger(__name__)

CONTROL_LABEL = "control"


class OfferRequest(BaseModel):
    """The browser's (or app's) SDP offer; it must send a video track and may pick a model and blend."""

    sdp: str = Field(min_length=1)
    type: Literal["offer"]
    model: str | None = None
    weights: dict[str, Any] | None = None


@dataclass
class RateLimit:
    """A token bucket: ``rate`` per second sustained, ``burst`` at once. ``take`` says whether one more fits."""

    rate: float
    burst: int
    tokens: float = field(init=False)
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)  # a full bucket to start

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class OfferAnswer(BaseModel):
    sdp: str
    type: str
    peer_id: str
    replica: str | None = None  # which stylizing worker holds the stream (a Ray Serve replica), when several do
    session: str | None = None  # its broadcast session, when viewers can watch it: POST /api/whep/{session}


class LivePeers(Protocol):
    """Where offers go: this process's :class:`PeerRegistry`, or the workers of a Ray Serve deployment
    (service/http/cluster.py). The routes and /api/health see only this."""

    async def start(self) -> None:
        """Called once the app has started (before the first offer)."""
        ...

    async def open(self, offer: OfferRequest, client: str = "") -> OfferAnswer: ...

    def capacity(self) -> dict[str, Any]:
        """``peers`` and ``max_peers`` (of the whole deployment), and anything more it knows."""
        ...

    def dream_unavailable(self) -> str | None:
        """Why the live DeepDream mode does not run (None: it does)."""
        ...

    async def close_all(self) -> None: ...


@contextlib.contextmanager
def loopback_host_addresses() -> Iterator[None]:
    """Make aioice gather only 127.0.0.1 (it skips loopback by default); restored on exit."""
    original = aioice.ice.get_host_addresses

    def loopback_only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return ["127.0.0.1"] if use_ipv4 else []

    aioice.ice.get_host_addresses = loopback_only  # type: ignore[assignment]
    try:
        yield
    finally:
        aioice.ice.get_host_addresses = original  # type: ignore[assignment]


def rtc_configuration(ice_servers: list[str]) -> RTCConfiguration:
    return RTCConfiguration(iceServers=[RTCIceServer(urls=url) for url in ice_servers])


@dataclass
class Peer:
    peer_id: str
    pc: RTCPeerConnection
    controls: Controls
    client: str  # the address the offer came from
    messages: RateLimit
    track: StylizedTrack | None = None
    channel: RTCDataChannel | None = None
    created_at: float = field(default_factory=time.monotonic)
    throttled: bool = False  # told once that its control messages come too fast; dropped until they slow
    supervisor: asyncio.Task[None] | None = None
    ingest: bool = False  # a WHIP publisher: nothing is sent back to it, its painting goes to viewers only
    relay: MediaRelay = field(default_factory=MediaRelay)  # the one painting, fanned out to every subscriber
    painted: EncoderFrames | None = None  # the one painting, as the relay hands it out
    tap: asyncio.Task[None] | None = None  # an ingest's painting runs (and its camera is read) with no viewer too

    @property
    def streaming(self) -> bool:
        """Media has arrived: the peer connected and its camera runs."""
        return self.track is not None and self.track.stats.frames_in > 0

    @property
    def connecting(self) -> bool:
        """Still between its offer and a working connection (what a per-address limit counts)."""
        return self.pc.connectionState != "connected" and not self.streaming

    def gone(self, now: float, settings: Settings) -> str | None:
        """Why this peer's slot should be given back now, if it should: it never connected in time, its frames
        stopped (a killed client), or its camera sends frames larger than the server decodes for anyone.
        Control messages keep nothing alive."""
        if not self.streaming:
            waited = now - self.created_at
            return (
                f"no media {settings.connect_timeout:.0f} s after its offer"
                if waited > settings.connect_timeout
                else None
            )
        assert self.track is not None
        width, height = self.track.stats.camera
        if width * height > settings.max_camera_pixels:
            return f"its camera sends {width}x{height} frames; at most {settings.max_camera_pixels} pixels are taken"
        idle = now - self.track.stats.last_frame_at > settings.idle_timeout
        return f"no frame for {settings.idle_timeout:.0f} s" if idle else None


class SessionWatchers(Protocol):
    """What plays a registry's painted streams to others (service/live/broadcast.py); told when a stream ends."""

    async def ended(self, peer_id: str) -> None: ...


async def _drain(track: MediaStreamTrack) -> None:
    """Pull frames from ``track`` until it ends."""
    with contextlib.suppress(MediaStreamError):
        while True:
            await track.recv()


class PeerRegistry:
    """The open peer connections: admits up to ``max_peers``, closes idle ones and all on shutdown."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        executor: Executor,
        dreamer: Dreamer | None = None,
        dream_executor: Executor | None = None,
        slow_executor: Executor | None = None,
    ) -> None:
        """``dreamer`` (None: no dream mode) dreams in ``dream_executor`` so styled peers never wait on it;
        frames of models slower than the realtime tier run in ``slow_executor`` (when given)."""
        self.engine = engine
        self.settings = settings
        self.executor = executor
        self.slow_executor = slow_executor
        self.slow_models = frozenset(n for n, m in engine.models.items() if m.entry.tier != "realtime")
        self.dreamer = dreamer
        self.dream_executor = dream_executor
        self.peers: dict[str, Peer] = {}
        self.draining = False  # no new peers; the open ones stream on (a worker being scaled down)
        self.offers = 0  # offers received, admitted or not (what a router counts its routed offers against)
        self.replica: str | None = None  # set by a Ray Serve worker: its name, given in every answer
        self.watchers: SessionWatchers | None = None  # who plays these streams (WHEP viewers); None: nobody can

    def __len__(self) -> int:
        return len(self.peers)

    def capacity(self) -> dict[str, Any]:
        return {"peers": len(self.peers), "max_peers": self.settings.max_peers, "draining": self.draining}

    async def start(self) -> None:
        return None

    def dream_unavailable(self) -> str | None:
        return "this server was started without dream mode" if self.dreamer is None else self.dreamer.unavailable

    async def drain(self, timeout: float) -> None:
        """Take no new peer, tell the open ones on their control channel, and wait until they end or
        ``timeout`` seconds pass; then close what is left."""
        self.draining = True
        for peer in self.peers.values():
            if peer.channel is not None and peer.channel.readyState == "open":
                peer.channel.send(
                    json.dumps(
                        {
                            "draining": True,
                            "reason": "this worker is shutting down; the "
                            "stream goes on until it ends, new streams go to another worker",
                        }
                    )
                )
        deadline = time.monotonic() + timeout
        while self.peers and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        if self.peers:
            log.info("drain: %d peers still open after %.0f s; closing them", len(self.peers), timeout)
        await self.close_all()

    async def open(
        self, offer: OfferRequest, client: str = "", look: LookUpdate | None = None, ingest: bool = False
    ) -> OfferAnswer:
        """Admit one camera: limits first (503, 429), then the offer's codecs and look (422, 400), then media.
        ``look``: the rest of the look beyond the offer's model and weights (WHIP's query). ``ingest``: a WHIP
        publisher, answered receive-only; its painting goes to viewers."""
        settings = self.settings
        self.offers += 1
        check_sdp(offer.sdp, settings.max_sdp_bytes, settings.max_media_sections)
        if self.draining:
            raise ServiceBusy(
                "this worker is shutting down; try again (another worker takes the stream)", retry_after=1
            )
        if len(self.peers) >= settings.max_peers:
            raise ServiceBusy(f"the server is at its limit of {settings.max_peers} peers; try again later")
        pending = sum(1 for p in self.peers.values() if p.client == client and p.connecting)
        if pending >= settings.max_pending_offers:
            raise TooManyRequests(f"{pending} offers from this address are still connecting; wait for them")
        check_codecs(offer.sdp)
        controls = self._controls(offer, look)
        pc = RTCPeerConnection(rtc_configuration(self.settings.effective_ice_servers))
        peer = Peer(
            peer_id=secrets.token_urlsafe(12),
            pc=pc,
            controls=controls,
            client=client,
            messages=RateLimit(settings.control_rate, settings.control_burst),
            ingest=ingest,
        )
        self.peers[peer.peer_id] = peer
        try:
            self._wire(peer)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type=offer.type))
            if peer.track is None:
                raise BadRequest("the offer must send a video track")
            await answer_video_only(pc)
        except Exception as exc:
            await self.close(peer.peer_id)
            if isinstance(exc, ServiceError):
                raise
            raise BadRequest(f"malformed SDP offer ({type(exc).__name__}: {exc})") from exc
        peer.supervisor = asyncio.ensure_future(self._supervise(peer))
        log.info(
            "%s %s connected (model %s, %d open)",
            "ingest" if ingest else "peer",
            peer.peer_id,
            controls.look.model,
            len(self.peers),
        )
        local = pc.localDescription
        return OfferAnswer(
            sdp=local.sdp,
            type=local.type,
            peer_id=peer.peer_id,
            replica=self.replica,
            session=peer.peer_id if self.watchers is not None else None,
        )

    def _controls(self, offer: OfferRequest, look: LookUpdate | None) -> Controls:
        """A new stream's controls: the offer's model and blend (no easing in from another), then ``look``."""
        start = LookUpdate.parse({"weights": offer.weights, "model": offer.model}, "the offer").as_look(self.engine)
        controls = Controls.starting(start, self.settings.ease_frames)
        if look is not None:
            apply_look(self.engine, controls, look, self.dreamer)
        return controls

    def _wire(self, peer: Peer) -> None:
        pc = peer.pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video" and peer.track is None:
                self._paint(peer, track)

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            if channel.label != CONTROL_LABEL:
                return
            peer.channel = channel

            @channel.on("message")
            def on_message(raw: str | bytes) -> None:
                self._on_control(peer, channel, raw)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            log.debug("peer %s: %s", peer.peer_id, pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                await self.close(peer.peer_id)

    def _paint(self, peer: Peer, camera: MediaStreamTrack) -> None:
        """Paint ``camera`` once, behind the peer's relay: its own return video (or, for an ingest, a reader that
        keeps the painting going) and every viewer subscribe to it."""
        settings = self.settings
        governor = ResolutionGovernor(
            settings.max_frame_side,
            settings.min_frame_side,
            settings.target_fps,
            enabled=settings.adaptive_resolution,
        )
        peer.track = StylizedTrack(
            camera,
            self.engine,
            peer.controls,
            self.executor,
            settings.max_frame_side,
            self.dreamer,
            self.dream_executor,
            governor,
            pipelined=settings.pipeline_frames,
            slow_executor=self.slow_executor,
            slow_models=self.slow_models,
        )
        peer.painted = EncoderFrames(peer.track)
        painted = peer.relay.subscribe(peer.painted, buffered=False)  # a slow encoder gets the newest frame
        if peer.ingest:
            peer.tap = asyncio.ensure_future(_drain(painted))
        else:
            peer.pc.addTrack(painted)

    def _on_control(self, peer: Peer, channel: RTCDataChannel, raw: str | bytes) -> None:
        """One control message: applied and answered, or, past the peer's rate, dropped (told once)."""
        if not peer.messages.take():
            if not peer.throttled:  # one error reply, then silence until the client slows down
                peer.throttled = True
                limit = f"at most {self.settings.control_rate:g} per second"
                channel.send(
                    json.dumps(
                        {"error": f"too many control messages: {limit}; messages are dropped until they slow down"}
                    )
                )
            return
        peer.throttled = False
        reply = apply_control(self.engine, peer.controls, raw, self.dreamer)
        if "error" in reply:
            log.info("peer %s: rejected control message: %s", peer.peer_id, reply["error"])
        channel.send(json.dumps(reply))

    async def _supervise(self, peer: Peer) -> None:
        """Every ``stats_interval``: send stats on the control channel; close the peer when it never connected or
        its frames stopped."""
        settings = self.settings
        while True:
            await asyncio.sleep(min(settings.stats_interval, settings.connect_timeout / 4, settings.idle_timeout / 4))
            why = peer.gone(time.monotonic(), settings)
            if why is not None:
                log.info("peer %s: %s; closing", peer.peer_id, why)
                if peer.channel is not None and peer.channel.readyState == "open":
                    peer.channel.send(json.dumps({"error": f"the stream ends: {why}"}))
                await self.close(peer.peer_id)
                return
            if peer.track is not None and peer.channel is not None and peer.channel.readyState == "open":
                peer.channel.send(json.dumps({"stats": peer.track.stats.snapshot()}))

    async def close(self, peer_id: str) -> None:
        peer = self.peers.pop(peer_id, None)
        if peer is None:
            return
        current = asyncio.current_task()
        if peer.supervisor is not None and peer.supervisor is not current:
            peer.supervisor.cancel()
        if peer.tap is not None:
            peer.tap.cancel()
        if peer.track is not None:
            peer.track.stop()
        await peer.pc.close()
        if self.watchers is not None:
            await self.watchers.ended(peer_id)
        log.info("peer %s closed (%d open)", peer_id, len(self.peers))

    async def close_all(self) -> None:
        await asyncio.gather(*(self.close(peer_id) for peer_id in list(self.peers)))


def open_registry(settings: Settings, engine: Engine, stack: contextlib.ExitStack) -> PeerRegistry:
    """A peer registry with its thread pools (closed with ``stack``): inference, the quality tier's own thread
    (one peer choosing it cannot starve the rest) and, with dream mode, the dreamer's."""
    executor = stack.enter_context(ThreadPoolExecutor(settings.inference_workers, thread_name_prefix="inference"))
    dreamer, dream_executor = None, None
    if settings.dream:
        dreamer = Dreamer(
            DreamOptions(
                device=settings.dream_device,
                max_side_cpu=settings.dream_max_side_cpu,
                max_side_gpu=settings.dream_max_side_gpu,
                threads=settings.dream_threads,
                vgg_weights=settings.vgg_weights,
            )
        )
        if dreamer.unavailable:
            log.info("live DeepDream mode unavailable: %s", dreamer.unavailable)
        dream_executor = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="dream"))
    slow_executor = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="inference-slow"))
    return PeerRegistry(engine, settings, executor, dreamer, dream_executor, slow_executor)
