"""Whether the service is up, what it serves, and how full it is (open without the token)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from service.http.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(services: ServicesDep, request: Request) -> dict[str, Any]:
    learning = getattr(request.app.state, "learning", None)  # set by the styles router's lifespan
    info = learning.info() if learning is not None else None
    return {
        "status": "ok",
        "models": sorted(services.engine.models),
        "providers": services.engine.providers,
        **services.peers.capacity(),  # peers and max_peers: of the whole deployment when workers hold the streams
        "learning": {"available": info.available, "photos": info.photos, "reason": info.reason} if info else None,
    }
