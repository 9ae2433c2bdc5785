"""HTTP routes: styles, one-shot stylize, health, and the WebRTC offer."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import cv2
import numpy as np
from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile
from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from service import contract, dream
from service.brush import BRUSH_MAX, BRUSH_MIN
from service.engine import SHRINK_ABOVE_PIXELS, Engine, resize_to_fit, trim_heap
from service.errors import PayloadTooLarge, ServiceBusy, UnsupportedMedia
from service.live.signalling import LivePeers, OfferAnswer, OfferRequest
from service.look import LookUpdate
from service.settings import Settings
from service.thumbnails import Thumbnails

router = APIRouter(prefix="/api")


@dataclass(frozen=True)
class Services:
    """What the routes need; built in the app's lifespan."""

    settings: Settings
    engine: Engine
    peers: LivePeers
    thumbnails: Thumbnails
    executor: Executor
    stylize_slots: Slots


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


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


class StylesResponse(BaseModel):
    default_model: str
    models: list[ModelInfo]


def _style_info(style: str, entry: contract.ModelEntry) -> StyleInfo:
    url = f"/api/styles/{style}/thumbnail"
    if style in entry.training.get("added_styles", {}):
        return StyleInfo(name=style, thumbnail_url=url, kind="added")
    if style not in entry.dreams:
        return StyleInfo(name=style, thumbnail_url=url)
    info = entry.dreams[style]
    gain = info.get("gain")
    return StyleInfo(name=style, thumbnail_url=url, kind="dream", layer=info.get("layer"),
                     gain=float(gain) if gain is not None else None)


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
        available=reason is None, reason=reason, layers=list(dream.LAYERS), defaults=dict(defaults.__dict__),
        ranges={"iterations": list(dream.ITERATIONS), "octaves": list(dream.OCTAVES), "feedback": [0.0, 0.95],
                "intensity": [0.0, 1.0]},
    )


@router.get("/rtc-config")
async def rtc_config(services: ServicesDep) -> dict[str, Any]:
    """The ICE servers a browser should use (the page reads this before connecting)."""
    return {"iceServers": [{"urls": url} for url in services.settings.effective_ice_servers]}


WEIGHTS_HELP = 'JSON {"style": w} or "style=w,other=w"'
BRUSH_HELP = f"stroke scale in [{BRUSH_MIN}, {BRUSH_MAX}]; 2 = strokes twice as large, the picture as sharp"


@router.post("/stylize", response_class=Response, responses={200: {"content": {"image/png": {}}}})
async def stylize(
    services: ServicesDep,
    image: Annotated[UploadFile, File(description="PNG, JPEG, WebP, ... image")],
    weights: Annotated[str | None, Form(description=WEIGHTS_HELP)] = None,
    strength: Annotated[str | None, Form(description="0 = original, 1 = fully stylized (default 1)")] = None,
    preserve_color: Annotated[str | None, Form(description="true or false (default false)")] = None,
    model: Annotated[str | None, Form(description="model name; default: the realtime one")] = None,
    brush: Annotated[str | None, Form(description=BRUSH_HELP + " (default 1)")] = None,
) -> Response:
    """Stylize one image and return it as PNG (longer side capped at ``max_image_side``)."""
    look = LookUpdate.from_text({"weights": weights, "strength": strength, "preserve_color": preserve_color,
                                 "model": model, "brush": brush})
    settings = services.settings
    limit = settings.max_upload_bytes
    if image.size is not None and image.size > limit:
        raise PayloadTooLarge(f"image is {image.size} bytes; the limit is {limit}")
    loaded = services.engine.model(look.model)
    vector = look.weights_for(loaded.styles)
    if vector is None:
        vector = contract.one_hot(0, len(loaded.styles))
    data = await image.read(limit + 1)
    with services.stylize_slots.hold():  # 503 when every slot works: the loop never waits on a decode
        png = await run_in_threadpool(_stylize_bytes, services, data, vector, loaded.entry.name, look)
    return Response(png, media_type="image/png")


def _stylize_bytes(services: Services, data: bytes, vector: np.ndarray, model: str, look: LookUpdate) -> bytes:
    """Decode (pixel count checked from the header first), stylize and encode one upload, in a worker thread."""
    settings = services.settings
    rgb = decode_image(data, settings.max_upload_bytes, settings.max_image_pixels)
    out = services.engine.stylize(
        resize_to_fit(rgb, settings.max_image_side), vector, model=model,
        strength=1.0 if look.strength is None else look.strength, keep_color=bool(look.preserve_color),
        brush=1.0 if look.brush is None else look.brush)
    ok, png = cv2.imencode(".png", cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
    assert ok
    body = bytes(png.tobytes())
    if rgb.shape[0] * rgb.shape[1] > SHRINK_ABOVE_PIXELS:  # a big upload: give its buffers back to the system
        del rgb, out, png
        trim_heap()
    return body


class Slots:
    """At most ``count`` holders at once; one more is refused at once with 503 (never queued on the loop)."""

    def __init__(self, count: int, what: str) -> None:
        self.count, self.what, self.taken = count, what, 0

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        if self.taken >= self.count:
            raise ServiceBusy(f"all {self.count} {self.what} slots are busy; try again shortly", retry_after=1)
        self.taken += 1
        try:
            yield
        finally:
            self.taken -= 1


@router.post("/offer")
async def offer(body: OfferRequest, services: ServicesDep, request: Request) -> OfferAnswer:
    """Start a stream: send an SDP offer with a video track (and a ``control`` data channel)."""
    return await services.peers.open(body, request.client.host if request.client else "")


def decode_image(data: bytes, limit: int, max_pixels: int = 40_000_000) -> np.ndarray:
    """Upload bytes -> HxWx3 uint8 RGB, turned upright by its EXIF orientation (phone photos); 413 beyond
    ``limit`` bytes or ``max_pixels`` pixels (read from the header, before anything is decoded), 415 when not
    an image."""
    if len(data) > limit:
        raise PayloadTooLarge(f"image is larger than the limit of {limit} bytes")
    try:
        with Image.open(io.BytesIO(data)) as picture:
            width, height = picture.size
            if width * height > max_pixels:
                raise PayloadTooLarge(f"image is {width}x{height} pixels; the limit is {max_pixels} pixels")
            picture.load()
            upright = ImageOps.exif_transpose(picture)
            return np.asarray(upright.convert("RGB"))
    except Image.DecompressionBombError as exc:
        raise PayloadTooLarge(f"image has too many pixels ({exc})") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UnsupportedMedia(
            "the upload is not an image this server can read (send PNG, JPEG or WebP)"
        ) from exc

