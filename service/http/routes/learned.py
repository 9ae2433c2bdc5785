"""Learning uploaded pictures as styles over HTTP: ``/api/styles`` POST and DELETE, and the jobs behind them
(the jobs themselves: service/learned/jobs.py; the store and the swap: service/learned/store.py)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import FileResponse
from PIL import Image
from starlette.concurrency import run_in_threadpool

from service.errors import BadRequest, NotFound, PayloadTooLarge
from service.learned.jobs import Learning
from service.learned.store import LearningInfo, Store, StyleJobStatus, read_picture
from service.live.signalling import PeerRegistry
from service.settings import StyleSettings

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs inside the app's lifespan, after the engine has loaded."""
    services = app.state.services
    settings: StyleSettings = app.state.style_settings
    store = await run_in_threadpool(
        Store,
        settings.dir,
        services.settings.models_dir,
        services.engine,
        services.thumbnails,
        services.settings.runtime_options(),
    )
    await run_in_threadpool(store.apply)
    learning = Learning(store, settings)
    if learning.unavailable is None and not isinstance(services.peers, PeerRegistry):
        learning.unavailable = (
            "learning a style needs the single-process server (`make serve-learn`): the "
            "stylizing workers of --engine ray would not see the new model"
        )
    if learning.unavailable:
        log.info("learning new styles unavailable: %s", learning.unavailable)
    elif learning.photos is not None:
        log.info("new styles learn on %s", learning.photos.origin)
    app.state.learning = learning
    worker = asyncio.ensure_future(learning.run_forever())
    try:
        yield
    finally:
        worker.cancel()
        await learning.close()


def get_learning(request: Request) -> Learning:
    learning: Learning = request.app.state.learning
    return learning


LearningDep = Annotated[Learning, Depends(get_learning)]
router = APIRouter(prefix="/styles", tags=["your own styles"], lifespan=lifespan)


@router.get("/learning")
async def learning_info(learning: LearningDep) -> LearningInfo:
    """Whether this server can learn new styles (and why not), its models and budgets."""
    return learning.info()


@router.post("", status_code=202)
async def add_style(
    learning: LearningDep,
    image: Annotated[UploadFile, File(description="the picture to paint like: JPEG, PNG, WebP, ...")],
    name: Annotated[str, Form(description="the new style's name: lowercase letters, digits and _")],
    minutes: Annotated[float | None, Form(description="learning budget per model (default: the server's)")] = None,
    steps: Annotated[int | None, Form(description="or a step budget per model")] = None,
    models: Annotated[str | None, Form(description="comma-separated model names (default: all)")] = None,
) -> StyleJobStatus:
    """Learn a picture as a new style, in the background; poll the job, then it is a style like the others."""
    settings = learning.settings
    learning.check_capacity()
    learning.check_name(name)
    chosen = tuple(m.strip() for m in models.split(",") if m.strip()) if models else tuple(learning.models)
    unknown = [m for m in chosen if m not in learning.models]
    if unknown or not chosen:
        raise BadRequest(f"models must be among {learning.models}, got {list(chosen)}")
    if minutes is not None and not 0 < minutes <= settings.max_minutes:
        raise BadRequest(f"minutes must be in (0, {settings.max_minutes:g}], got {minutes}")
    if steps is not None and not 0 < steps <= settings.max_steps:
        raise BadRequest(f"steps must be in [1, {settings.max_steps}], got {steps}")
    data = await image.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise PayloadTooLarge(f"the picture is larger than the limit of {settings.max_upload_bytes} bytes")
    picture = await run_in_threadpool(read_picture, data, settings)
    png = await run_in_threadpool(_png, picture)
    budget = minutes if minutes is not None else (0.0 if steps is not None else settings.minutes)
    job = learning.submit_add(
        name, png, hashlib.sha256(data).hexdigest(), chosen, budget, steps if steps is not None else settings.max_steps
    )
    return StyleJobStatus.of(job)


def _png(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


@router.get("/jobs")
async def list_jobs(learning: LearningDep) -> list[StyleJobStatus]:
    return [StyleJobStatus.of(j) for j in sorted(learning.jobs.values(), key=lambda j: j.created_at)]


@router.get("/jobs/{job_id}")
async def job_status(job_id: str, learning: LearningDep) -> StyleJobStatus:
    return StyleJobStatus.of(learning.get(job_id))


@router.get("/jobs/{job_id}/preview/{model}", response_class=FileResponse)
async def job_preview(job_id: str, model: str, learning: LearningDep) -> FileResponse:
    """The style as learned so far on a held-out photo (photo, then the new style), refreshed while learning."""
    job = learning.get(job_id)
    path = job.folder / f"preview-{model}.png"
    if model not in job.models or not path.is_file():
        raise NotFound(f"job {job_id} has no preview for {model!r} yet")
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.delete("/jobs/{job_id}")
async def cancel_job(job_id: str, learning: LearningDep) -> StyleJobStatus:
    """Stop a queued or learning job (the models served stay as they were)."""
    return StyleJobStatus.of(learning.cancel(job_id))


@router.delete("/{name}", status_code=202)
async def remove_style(name: str, learning: LearningDep) -> StyleJobStatus:
    """Remove a style added here (bundled ones: 403). Done at once when it was its model's only added style,
    else a short job rebuilds the model without it."""
    return StyleJobStatus.of(learning.submit_remove(name))
