"""Broadcast sessions: every live stream (a WHIP publisher, or the page's own camera) is painted once and played to
any number of WHEP viewers, each a subscriber of the stream's aiortc ``MediaRelay``.

A session is a peer of the :class:`PeerRegistry` (its id is the peer's id, so it counts against ``max_peers`` and
ends the way a peer ends: DELETE, idle, failed). Painting is per session and encoding per session and codec: the
viewers of one codec share one :class:`EncodedFeed` (service/live/feeds.py), so an extra viewer costs only its
packets; ``max_viewers`` caps them per session.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Literal, Protocol

from aiortc import RTCPeerConnection, RTCSessionDescription
from pydantic import BaseModel

from service.errors import BadRequest, NotFound, ServiceBusy, ServiceError, TooManyRequests
from service.live.controls import apply_look
from service.live.feeds import EncodedFeed, PacketTrack
from service.live.offers import (
    Codec,
    answer_video_only,
    check_codecs,
    check_sdp,
    with_bitrate_cap,
)
from service.live.signalling import OfferAnswer, OfferRequest, Peer, PeerRegistry, rtc_configuration
from service.look import LookUpdate

log = logging.getLogger(__name__)


@dataclass
class Viewer:
    viewer_id: str
    pc: RTCPeerConnection
    client: str  # the address the offer came from
    track: PacketTrack | None = None  # its copy of the session's encoded feed
    created_at: float = field(default_factory=time.monotonic)
    expiry: asyncio.Task[None] | None = None

    @property
    def connecting(self) -> bool:
        return self.pc.connectionState != "connected"


class ViewerInfo(BaseModel):
    id: str
    state: str  # the viewer's connection state: new, connecting, connected
    seconds: float  # since its offer
    frames_sent: int  # painted frames its sender took from the shared encode


class SessionInfo(BaseModel):
    id: str
    source: Literal["whip", "page"]
    model: str
    seconds: float  # since its offer
    streaming: bool  # frames arrive from its camera
    frames_in: int
    frames_painted: int
    viewers: list[ViewerInfo]
    max_viewers: int
    frames_encoded: dict[str, int]  # per codec its viewers play: frames encoded once for all of them


class BroadcastHost(Protocol):
    """Where sessions live: this process's :class:`Broadcasts`, or the workers of a Ray Serve deployment
    (service/http/cluster.py ``RemoteBroadcasts``). The WHIP and WHEP routes see only this; each call answers
    404 for a session or viewer it does not hold."""

    async def publish(self, sdp: str, look: LookUpdate, client: str = "") -> OfferAnswer: ...
    async def check(self, session_id: str, ingest: bool = False) -> None: ...
    async def end(self, session_id: str, ingest: bool = False) -> None: ...
    async def restyle(self, session_id: str, update: LookUpdate) -> None: ...
    async def watch(self, session_id: str, sdp: str, client: str = "") -> tuple[str, str]: ...
    async def check_viewer(self, session_id: str, viewer_id: str) -> None: ...
    async def stop_watching(self, session_id: str, viewer_id: str) -> None: ...
    async def sessions(self) -> list[SessionInfo]: ...


# The calls a remote host may make on a worker's Broadcasts (service/http/cluster.py), each by name.
HOST_CALLS = ("publish", "check", "end", "restyle", "watch", "check_viewer", "stop_watching", "sessions")


class Broadcasts:
    """The viewers of a registry's streams: up to ``max_viewers`` per stream, ended with their stream."""

    def __init__(self, registry: PeerRegistry) -> None:
        self.registry = registry
        self.viewers: dict[str, dict[str, Viewer]] = {}  # session id -> viewer id -> viewer
        self.feeds: dict[tuple[str, Codec], EncodedFeed] = {}  # (session id, codec) -> the one encode
        registry.watchers = self  # the page's answers now name their session, and a stream's end ends its viewers

    async def publish(self, sdp: str, look: LookUpdate, client: str = "") -> OfferAnswer:
        """A WHIP publisher's offer: a new session painted with ``look``; the answer is receive-only and asks the
        publisher to stay under ``max_ingest_bitrate``."""
        offer = OfferRequest(sdp=sdp, type="offer", model=look.model, weights=look.weights)
        opened = await self.registry.open(offer, client, look=look, ingest=True)
        capped = with_bitrate_cap(opened.sdp, self.registry.settings.max_ingest_bitrate)
        return opened.model_copy(update={"sdp": capped})

    def session(self, session_id: str, ingest: bool = False) -> Peer:
        """The live session of that id (``ingest``: a WHIP one); 404 when there is none."""
        peer = self.registry.peers.get(session_id)
        if peer is None or (ingest and not peer.ingest):
            kind = "WHIP session" if ingest else "session"
            raise NotFound(f"no {kind} {session_id[:40]!r}: it ended, or never existed (GET /api/sessions lists them)")
        return peer

    async def check(self, session_id: str, ingest: bool = False) -> None:
        """404 unless the session lives (``ingest``: and is a WHIP one)."""
        self.session(session_id, ingest)

    async def end(self, session_id: str, ingest: bool = False) -> None:
        self.session(session_id, ingest)
        await self.registry.close(session_id)  # its viewers end in ended()

    async def restyle(self, session_id: str, update: LookUpdate) -> None:
        """Change a WHIP session's look, as a control message changes the page's (same checks, same words)."""
        peer = self.session(session_id, ingest=True)
        apply_look(self.registry.engine, peer.controls, update, self.registry.dreamer)

    async def watch(self, session_id: str, sdp: str, client: str = "") -> tuple[str, str]:
        """A WHEP viewer's offer -> (viewer id, SDP answer). Limits answer before any media work: 404, 503 past
        ``max_viewers``, 429 past ``max_pending_offers`` still connecting from one address, 422 for codecs."""
        settings = self.registry.settings
        peer = self.session(session_id)
        check_sdp(sdp, settings.max_sdp_bytes, settings.max_media_sections)
        if len(self.viewers.get(session_id, {})) >= settings.max_viewers:
            raise ServiceBusy(f"this stream has its limit of {settings.max_viewers} viewers; try again later")
        pending = sum(v.client == client and v.connecting for group in self.viewers.values() for v in group.values())
        if pending >= settings.max_pending_offers:
            raise TooManyRequests(f"{pending} viewers from this address are still connecting; wait for them")
        codec = check_codecs(sdp)
        viewer = Viewer(
            secrets.token_urlsafe(12), RTCPeerConnection(rtc_configuration(settings.effective_ice_servers)), client
        )
        viewers = self.viewers.setdefault(session_id, {})
        viewers[viewer.viewer_id] = viewer
        self._wire(session_id, viewer)
        try:
            viewer.track = self._feed(peer, codec).join()
            viewer.pc.addTrack(viewer.track)
            await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await answer_video_only(viewer.pc)
            if viewer.viewer_id not in self.viewers.get(session_id, {}):
                raise NotFound(f"session {session_id!r} ended while the viewer's offer was answered")
        except Exception as exc:
            await self.leave(session_id, viewer.viewer_id)
            if isinstance(exc, ServiceError):
                raise
            raise BadRequest(f"malformed SDP offer ({type(exc).__name__}: {exc})") from exc
        viewer.expiry = asyncio.ensure_future(self._expire(session_id, viewer))
        log.info("session %s: viewer %s joined (%d watching)", session_id, viewer.viewer_id, len(viewers))
        return viewer.viewer_id, viewer.pc.localDescription.sdp

    def _feed(self, peer: Peer, codec: Codec) -> EncodedFeed:
        """The session's one encode in ``codec``, started by its first viewer and dropped after its last."""
        key = (peer.peer_id, codec)
        feed = self.feeds.get(key)
        if feed is None:
            assert peer.painted is not None  # a session exists only once its offer brought a video track
            settings = self.registry.settings
            source = peer.relay.subscribe(peer.painted, buffered=False)  # a slow encoder gets the newest frame
            feed = EncodedFeed(
                source,
                codec,
                settings.viewer_bitrate,
                settings.viewer_keyframe_seconds,
                self._drop_feed,
            )
            self.feeds[key] = feed
        return feed

    def _drop_feed(self, feed: EncodedFeed) -> None:
        for key, kept in list(self.feeds.items()):
            if kept is feed:
                del self.feeds[key]

    def _wire(self, session_id: str, viewer: Viewer) -> None:
        pc = viewer.pc

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.leave(session_id, viewer.viewer_id)

    async def _expire(self, session_id: str, viewer: Viewer) -> None:
        """A viewer that has not connected ``connect_timeout`` seconds after its offer gives its slot back."""
        await asyncio.sleep(self.registry.settings.connect_timeout)
        if viewer.pc.connectionState != "connected":
            log.info("session %s: viewer %s never connected; closing", session_id, viewer.viewer_id)
            await self.leave(session_id, viewer.viewer_id)

    def viewer(self, session_id: str, viewer_id: str) -> Viewer:
        viewer = self.viewers.get(session_id, {}).get(viewer_id)
        if viewer is None:
            raise NotFound(f"no viewer {viewer_id[:40]!r} of session {session_id[:40]!r}: it left, or never joined")
        return viewer

    async def check_viewer(self, session_id: str, viewer_id: str) -> None:
        self.viewer(session_id, viewer_id)

    async def stop_watching(self, session_id: str, viewer_id: str) -> None:
        """A viewer's DELETE: 404 when it is not there."""
        self.viewer(session_id, viewer_id)
        await self.leave(session_id, viewer_id)

    async def leave(self, session_id: str, viewer_id: str) -> bool:
        """Close one viewer; False when it was not there (already gone)."""
        viewer = self.viewers.get(session_id, {}).pop(viewer_id, None)
        if viewer is None:
            return False
        if not self.viewers.get(session_id):
            self.viewers.pop(session_id, None)
        if viewer.expiry is not None and viewer.expiry is not asyncio.current_task():
            viewer.expiry.cancel()
        if viewer.track is not None:
            viewer.track.stop()  # leaves its feed; the last viewer out stops the feed's encode
        await viewer.pc.close()
        log.info("session %s: viewer %s left", session_id, viewer_id)
        return True

    async def ended(self, peer_id: str) -> None:
        """The stream ended (DELETE, its publisher vanished, idle): its viewers' connections close with it."""
        await asyncio.gather(*(self.leave(peer_id, v) for v in list(self.viewers.get(peer_id, {}))))
        self.viewers.pop(peer_id, None)

    async def sessions(self) -> list[SessionInfo]:
        now = time.monotonic()
        return [self._info(peer, now) for peer in self.registry.peers.values()]

    def _info(self, peer: Peer, now: float) -> SessionInfo:
        viewers = [
            ViewerInfo(
                id=v.viewer_id,
                state=v.pc.connectionState,
                seconds=round(now - v.created_at, 1),
                frames_sent=v.track.sent if v.track is not None else 0,
            )
            for v in self.viewers.get(peer.peer_id, {}).values()
        ]
        stats = peer.track.stats if peer.track is not None else None
        return SessionInfo(
            id=peer.peer_id,
            source="whip" if peer.ingest else "page",
            model=peer.controls.look.model,
            seconds=round(now - peer.created_at, 1),
            streaming=peer.streaming,
            frames_in=stats.frames_in if stats else 0,
            frames_painted=stats.frames_out if stats else 0,
            viewers=viewers,
            max_viewers=self.registry.settings.max_viewers,
            frames_encoded={codec: f.encoded for (sid, codec), f in self.feeds.items() if sid == peer.peer_id},
        )
