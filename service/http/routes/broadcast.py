"""WHIP ingest (RFC 9725) and WHEP playback over the broadcast sessions of service/live/broadcast.py.

Publish: ``POST /api/whip?weights=great_wave=1&strength=0.8`` with an ``application/sdp`` offer -> 201, the answer,
``Location: /api/whip/{session}``; the query speaks the control vocabulary (service/look.py). Watch: ``POST
/api/whep/{session}`` -> 201, ``Location: /api/whep/{session}/{viewer}``. ``DELETE`` on a Location ends it. The
server gathers all its candidates before answering and takes none later: no trickle ICE, no ICE restart, so
``PATCH`` on a session is 405 and a client on a new network path publishes again. With Ray Serve the same routes
reach the workers through the ingress (service/http/cluster.py ``RemoteBroadcasts``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response

from service.errors import BadRequest, FeatureUnavailable, UnsupportedMedia
from service.live.broadcast import BroadcastHost, Broadcasts, SessionInfo
from service.live.signalling import PeerRegistry
from service.look import LOOK_KEYS, LookUpdate, decode_json

SDP = "application/sdp"
NO_TRICKLE = (
    "this server takes no trickle ICE and no ICE restart: send the offer with its candidates gathered; "
    "on a new network path, DELETE the session and send a new offer"
)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs inside the app's lifespan: the sessions of this process's streams, or the Ray Serve workers' (the
    ingress's live side brings its own ``broadcasts``)."""
    peers = app.state.services.peers
    app.state.broadcasts = Broadcasts(peers) if isinstance(peers, PeerRegistry) else getattr(peers, "broadcasts", None)
    yield


router = APIRouter(tags=["broadcast (WHIP, WHEP)"], lifespan=lifespan)


def get_broadcasts(request: Request) -> BroadcastHost:
    broadcasts: BroadcastHost | None = getattr(request.app.state, "broadcasts", None)
    if broadcasts is None:
        raise FeatureUnavailable("WHIP and WHEP are not available: this app has no live streams")
    return broadcasts


BroadcastsDep = Annotated[BroadcastHost, Depends(get_broadcasts)]

OFFER_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {SDP: {"schema": {"type": "string"}}}}}
LOOK_QUERY = [
    {
        "name": key,
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": "as the control message's key of that name (weights: great_wave=1,udnie=0.5)",
    }
    for key in LOOK_KEYS
]
LOOK_BODY: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": LookUpdate.model_json_schema()}}}
}


def created(location: str) -> dict[int | str, dict[str, Any]]:
    return {
        201: {
            "description": "the SDP answer",
            "content": {SDP: {"schema": {"type": "string"}}},
            "headers": {"Location": {"description": location, "schema": {"type": "string"}}},
        },
        405: {"description": "PATCH (trickle ICE, ICE restart) is not supported"},
    }


async def sdp_offer(request: Request) -> str:
    """The body of a WHIP or WHEP POST: an SDP offer as ``application/sdp`` (415 otherwise, 400 when empty)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != SDP:
        raise UnsupportedMedia(f"send the SDP offer as Content-Type: {SDP} (got {media[:60] or 'none'})")
    try:
        text = (await request.body()).decode()
    except UnicodeDecodeError:
        raise BadRequest("the SDP offer is not UTF-8 text") from None
    if not text.strip():
        raise BadRequest("the body is empty: send an SDP offer")
    return text


def answer(sdp: str, location: str, request: Request) -> Response:
    """201 with the answer, its Location, and the ICE servers a client may use (RFC 9725 ``rel="ice-server"``)."""
    servers = request.app.state.services.settings.effective_ice_servers
    links = ", ".join(f'<{url}>; rel="ice-server"' for url in servers)
    return Response(
        sdp, status_code=201, media_type=SDP, headers={"Location": location, **({"Link": links} if links else {})}
    )


def client_of(request: Request) -> str:
    return request.client.host if request.client else ""


def options(allow: str) -> Response:
    return Response(status_code=200, headers={"Allow": allow, "Accept-Post": SDP})


@router.post(
    "/whip",
    status_code=201,
    response_class=Response,
    responses=created("/api/whip/{session}"),
    openapi_extra={**OFFER_BODY, "parameters": LOOK_QUERY},
)
async def whip_publish(request: Request, broadcasts: BroadcastsDep) -> Response:
    """Publish a camera (WHIP): the offer must send video (VP8, or H.264 constrained baseline); the query sets
    its look with the control message's keys. The session id is the last segment of Location."""
    look = LookUpdate.from_text(dict(request.query_params))
    offer = await sdp_offer(request)
    opened = await broadcasts.publish(offer, look, client_of(request))
    return answer(opened.sdp, f"/api/whip/{opened.peer_id}", request)


@router.options("/whip", include_in_schema=False)
async def whip_options() -> Response:
    return options("OPTIONS, POST")


@router.get("/whip/{session}", status_code=204, response_class=Response)
async def whip_session(session: str, broadcasts: BroadcastsDep) -> Response:
    """A WHIP session has no representation (RFC 9725): 204 while it lives, 404 after."""
    await broadcasts.check(session, ingest=True)
    return Response(status_code=204)


@router.delete("/whip/{session}", response_class=Response)
async def whip_end(session: str, broadcasts: BroadcastsDep) -> Response:
    """End a WHIP session; its viewers' streams end with it."""
    await broadcasts.end(session, ingest=True)
    return Response(status_code=200)


@router.patch("/whip/{session}", status_code=405, response_class=Response, responses={405: {}})
async def whip_patch(session: str, broadcasts: BroadcastsDep) -> Response:
    """Trickle ICE and ICE restarts are not supported: 405."""
    await broadcasts.check(session, ingest=True)
    return Response(NO_TRICKLE, status_code=405, headers={"Allow": "GET, DELETE, OPTIONS"}, media_type="text/plain")


@router.options("/whip/{session}", include_in_schema=False)
async def whip_session_options(session: str) -> Response:
    return options("GET, DELETE, OPTIONS")


@router.patch("/whip/{session}/look", openapi_extra=LOOK_BODY)
async def whip_look(session: str, request: Request, broadcasts: BroadcastsDep) -> dict[str, bool]:
    """Change a WHIP session's look (OBS has no data channel): a JSON object with the control message's keys,
    checked the same way and applied all or not at all."""
    update = LookUpdate.parse(decode_json(await request.body(), "a look update"), "a look update")
    await broadcasts.restyle(session, update)
    return {"ok": True}


@router.post(
    "/whep/{session}",
    status_code=201,
    response_class=Response,
    responses=created("/api/whep/{session}/{viewer}"),
    openapi_extra=OFFER_BODY,
)
async def whep_watch(session: str, request: Request, broadcasts: BroadcastsDep) -> Response:
    """Watch a session's painted stream (WHEP): a WHIP session, or the page's own (its offer's answer names it)."""
    offer = await sdp_offer(request)
    viewer, sdp = await broadcasts.watch(session, offer, client_of(request))
    return answer(sdp, f"/api/whep/{session}/{viewer}", request)


@router.options("/whep/{session}", include_in_schema=False)
async def whep_options(session: str) -> Response:
    return options("OPTIONS, POST")


@router.get("/whep/{session}/{viewer}", status_code=204, response_class=Response)
async def whep_viewer(session: str, viewer: str, broadcasts: BroadcastsDep) -> Response:
    await broadcasts.check_viewer(session, viewer)
    return Response(status_code=204)


@router.delete("/whep/{session}/{viewer}", response_class=Response)
async def whep_leave(session: str, viewer: str, broadcasts: BroadcastsDep) -> Response:
    """Stop watching."""
    await broadcasts.stop_watching(session, viewer)
    return Response(status_code=200)


@router.patch("/whep/{session}/{viewer}", status_code=405, response_class=Response, responses={405: {}})
async def whep_patch(session: str, viewer: str, broadcasts: BroadcastsDep) -> Response:
    """Trickle ICE and ICE restarts are not supported: 405."""
    await broadcasts.check_viewer(session, viewer)
    return Response(NO_TRICKLE, status_code=405, headers={"Allow": "GET, DELETE, OPTIONS"}, media_type="text/plain")


@router.get("/sessions")
async def sessions(broadcasts: BroadcastsDep) -> list[SessionInfo]:
    """Every live stream (WHIP and the page's) with its viewers."""
    return await broadcasts.sessions()


@router.delete("/sessions/{session}")
async def end_session(session: str, broadcasts: BroadcastsDep) -> dict[str, str]:
    """End any stream (a WHIP publisher or a page's camera) and its viewers."""
    await broadcasts.end(session)
    return {"ended": session}
