"""The live stream's signalling: the ICE servers to use and the SDP offer that starts a stream."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from service.http.deps import ServicesDep
from service.live.signalling import OfferAnswer, OfferRequest

router = APIRouter(tags=["live"])


@router.get("/rtc-config")
async def rtc_config(services: ServicesDep) -> dict[str, Any]:
    """The ICE servers a browser should use (the page reads this before connecting)."""
    return {"iceServers": [{"urls": url} for url in services.settings.effective_ice_servers]}


@router.post("/offer")
async def offer(body: OfferRequest, services: ServicesDep, request: Request) -> OfferAnswer:
    """Start a stream: send an SDP offer with a video track (and a ``control`` data channel)."""
    return await services.peers.open(body, request.client.host if request.client else "")
