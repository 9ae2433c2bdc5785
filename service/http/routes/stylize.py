"""One picture in, the painted picture out (``POST /api/stylize``)."""

from __future__ import annotations

from typing import Annotated

import cv2
from fastapi import APIRouter, File, Form, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from service.brush import BRUSH_MAX, BRUSH_MIN
from service.engine import SHRINK_ABOVE_PIXELS, resize_to_fit, trim_heap
from service.errors import PayloadTooLarge
from service.http.deps import Services, ServicesDep
from service.look import Look, LookUpdate
from service.painter import Painter
from service.pictures import decode_image

router = APIRouter(tags=["stylize"])


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
    update = LookUpdate.from_text(
        {"weights": weights, "strength": strength, "preserve_color": preserve_color, "model": model, "brush": brush}
    )
    look = update.as_look(services.engine)
    settings = services.settings
    limit = settings.max_upload_bytes
    if image.size is not None and image.size > limit:
        raise PayloadTooLarge(f"image is {image.size} bytes; the limit is {limit}")
    data = await image.read(limit + 1)
    with services.stylize_slots.hold():  # 503 when every slot works: the loop never waits on a decode
        png = await run_in_threadpool(_stylize_bytes, services, data, look)
    return Response(png, media_type="image/png")


def _stylize_bytes(services: Services, data: bytes, look: Look) -> bytes:
    """Decode (pixel count checked from the header first), stylize and encode one upload, in a worker thread."""
    settings = services.settings
    rgb = decode_image(data, settings.max_upload_bytes, settings.max_image_pixels)
    out = Painter(services.engine).stylize(resize_to_fit(rgb, settings.max_image_side), look)
    ok, png = cv2.imencode(".png", cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
    assert ok
    body = bytes(png.tobytes())
    if rgb.shape[0] * rgb.shape[1] > SHRINK_ABOVE_PIXELS:  # a big upload: give its buffers back to the system
        del rgb, out, png
        trim_heap()
    return body
