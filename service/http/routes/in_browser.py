"""Painting in the viewer's browser: what the page needs to paint like the server, and the files it loads.

- ``GET /api/in-browser``: the realtime model to download (its sha256, styles in order, size multiple), the
  runtime's version and where it is served, and the server's own rules the page applies the same way: the blend's
  easing over frames and the resolution governor. Nothing here is repeated in the page.
- ``GET /api/models/{name}/onnx``: a served model's ONNX file with its manifest sha256 as a strong ETag
  (``If-None-Match`` answers 304), behind the API token like the rest of ``/api``.
- ``GET /runtime/{version}/{file}``: onnxruntime-web's files (service/web_runtime.py), cached for a year: the
  version is in the path, so a new runtime is a new URL.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from service import contract, web_runtime
from service.errors import NotFound
from service.http.deps import ServicesDep
from service.live.track import ResolutionGovernor

IMMUTABLE = "public, max-age=31536000, immutable"


class InBrowserModel(BaseModel):
    name: str
    sha256: str
    url: str = Field(description="GET it (with the token): the ONNX file, ETag = sha256")
    size_multiple: int
    styles: list[str] = Field(description="the order of the model's style_weights input")
    frame_input: str = contract.INPUT_FRAME
    weights_input: str = contract.INPUT_WEIGHTS
    output: str = contract.OUTPUT_STYLIZED


class InBrowserRuntime(BaseModel):
    version: str
    base_url: str = Field(description="folder URL the page points onnxruntime-web's wasmPaths at")
    webgpu: bool = Field(description="the WebGPU build is there too")
    licence_url: str
    notices_url: str


class GovernorRules(BaseModel):
    """The server's resolution governor (service/live/track.py ResolutionGovernor), for the page's own."""

    enabled: bool
    max_side: int
    min_side: int
    target_fps: float
    settle: int
    step: int


class InBrowserInfo(BaseModel):
    available: bool
    reason: str | None = Field(None, description="why the page must paint on the server")
    model: InBrowserModel | None
    runtime: InBrowserRuntime
    ease_frames: int = Field(description="frames over which a new blend is eased in, as on the server")
    governor: GovernorRules


def _runtime_url(name: str = "") -> str:
    return f"/runtime/{web_runtime.VERSION}/{name}"


router = APIRouter(tags=["painting in the browser"])
runtime_router = APIRouter(tags=["painting in the browser"])


@router.get("/in-browser")
async def in_browser(services: ServicesDep) -> InBrowserInfo:
    """Whether a viewer can paint in their own browser here, the model and runtime to load, and the rules."""
    settings, engine = services.settings, services.engine
    status = web_runtime.runtime_status(settings.web_runtime_dir)
    realtime = [m for m in engine.models.values() if m.entry.tier == "realtime"]
    chosen = next((m for m in realtime if m.entry.name == engine.default_model), realtime[0] if realtime else None)
    reason = status.reason if chosen is not None else "this server has no realtime model to send to a browser"
    model = (
        None
        if chosen is None
        else InBrowserModel(
            name=chosen.entry.name,
            sha256=chosen.entry.sha256,
            url=f"/api/models/{chosen.entry.name}/onnx",
            size_multiple=chosen.entry.size_multiple,
            styles=list(chosen.styles),
        )
    )
    rules = ResolutionGovernor(settings.max_frame_side, settings.min_frame_side, settings.target_fps)
    return InBrowserInfo(
        available=reason is None,
        reason=reason,
        model=model,
        runtime=InBrowserRuntime(
            version=status.version,
            base_url=_runtime_url(),
            webgpu=status.webgpu,
            licence_url=_runtime_url("LICENSE"),
            notices_url=_runtime_url("ThirdPartyNotices.txt"),
        ),
        ease_frames=settings.ease_frames,
        governor=GovernorRules(
            enabled=settings.adaptive_resolution,
            max_side=rules.max_side,
            min_side=rules.min_side,
            target_fps=rules.target_fps,
            settle=rules.settle,
            step=rules.step,
        ),
    )


@router.get(
    "/models/{name}/onnx",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, 304: {"description": "unchanged"}},
)
async def model_file(name: str, services: ServicesDep, request: Request) -> Response:
    """The model's ONNX file as served now (a style learned here changes it, and its ETag)."""
    loaded = services.engine.models.get(name)
    if loaded is None:
        raise NotFound(f"no model {name!r}; available: {sorted(services.engine.models)}")
    etag = f'"{loaded.entry.sha256}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}  # kept by the browser, revalidated every time
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return FileResponse(loaded.path, media_type="application/octet-stream", headers=headers, filename=f"{name}.onnx")


@runtime_router.get("/runtime/{version}/{file}", response_class=Response, include_in_schema=False)
async def runtime_file(version: str, file: str, request: Request) -> Response:
    folder = request.app.state.services.settings.web_runtime_dir
    found = web_runtime.served_file(folder, file) if version == web_runtime.VERSION else None
    if found is None:
        raise NotFound(f"no runtime file {version}/{file}")
    path, media_type = found
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": IMMUTABLE})
