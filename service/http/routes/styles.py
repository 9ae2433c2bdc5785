"""The gallery: every model's styles in order, their thumbnails, and the live dream mode's vocabulary."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from service import contract, dream
from service.brush import BRUSH_MAX, BRUSH_MIN
from service.http.deps import ServicesDep

router = APIRouter(tags=["styles"])


class StyleInfo(BaseModel):
    name: str
    thumbnail_url: str
    kind: Literal["painting", "dream", "added"] = "painting"  # added: learned here from an upload (removable)
    layer: str | None = None  # dream styles: the VGG19 layer they amplify
    gain: float | None = None  # dream styles: measured factor on that layer's mean squared activation


class DreamInfo(BaseModel):
    """Whether the live iterative DeepDream mode runs here, and what a control message may ask."""

    available: bool
    reason: str | None
    layers: list[str]
    defaults: dict[str, Any]
    ranges: dict[str, list[float]]


class ModelInfo(BaseModel):
    name: str
    tier: str
    styles: list[StyleInfo]
    size_multiple: int
    credits: list[str]


class Range(BaseModel):
    min: float
    max: float
    default: float


class StylesResponse(BaseModel):
    default_model: str
    models: list[ModelInfo]
    # the ranges the control vocabulary takes (service/look.py checks them): what the page's sliders span
    controls: dict[str, Range] = {
        "strength": Range(min=0.0, max=1.0, default=1.0),
        "brush": Range(min=BRUSH_MIN, max=BRUSH_MAX, default=1.0),
    }


def _style_info(style: str, entry: contract.ModelEntry) -> StyleInfo:
    url = f"/api/styles/{style}/thumbnail"
    if style in entry.training.get("added_styles", {}):
        return StyleInfo(name=style, thumbnail_url=url, kind="added")
    if style not in entry.dreams:
        return StyleInfo(name=style, thumbnail_url=url)
    info = entry.dreams[style]
    gain = info.get("gain")
    return StyleInfo(
        name=style,
        thumbnail_url=url,
        kind="dream",
        layer=info.get("layer"),
        gain=float(gain) if gain is not None else None,
    )


@router.get("/styles")
async def styles(services: ServicesDep) -> StylesResponse:
    """Every model with its styles in order and the URL of each style's thumbnail."""
    models = [
        ModelInfo(
            name=m.entry.name,
            tier=m.entry.tier,
            styles=[_style_info(s, m.entry) for s in m.styles],
            size_multiple=m.entry.size_multiple,
            credits=list(m.entry.credits),
        )
        for m in services.engine.models.values()
    ]
    return StylesResponse(default_model=services.engine.default_model, models=models)


@router.get("/styles/{style}/thumbnail", response_class=Response)
async def thumbnail(style: str, services: ServicesDep) -> Response:
    body, media_type = await run_in_threadpool(services.thumbnails.get, style)
    return Response(body, media_type=media_type, headers={"Cache-Control": "max-age=3600"})


@router.get("/dream")
async def dream_info(services: ServicesDep) -> DreamInfo:
    """The iterative dream mode's availability, layers, defaults and allowed ranges."""
    reason = services.peers.dream_unavailable()
    defaults = dream.DreamParams()
    return DreamInfo(
        available=reason is None,
        reason=reason,
        layers=list(dream.LAYERS),
        defaults=dict(defaults.__dict__),
        ranges={
            "iterations": list(dream.ITERATIONS),
            "octaves": list(dream.OCTAVES),
            "feedback": [0.0, 0.95],
            "intensity": [0.0, 1.0],
        },
    )
