"""Video jobs over HTTP: upload a file, poll its progress, download the result, cancel or retry it (the jobs
themselves: service/jobs.py)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from service.errors import PayloadTooLarge
from service.http.deps import get_services
from service.http.routes.stylize import BRUSH_HELP, WEIGHTS_HELP
from service.jobs import JobState
from service.settings import JobSettings
from service.video.jobs import JobManager, JobNotReady, JobStatus, options_from_form
from service.video.media import probe_upload


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs inside the app's lifespan, after the engine has loaded."""
    settings: JobSettings = app.state.job_settings  # set by create_app, from the entry point
    manager = await run_in_threadpool(JobManager, app.state.services.engine, settings, settings.work_dir)
    app.state.jobs = manager

    async def sweep() -> None:
        while True:
            await asyncio.sleep(min(600.0, 3600 * settings.keep_hours / 4))
            await run_in_threadpool(manager.expire)

    sweeper = asyncio.ensure_future(sweep())
    try:
        yield
    finally:
        sweeper.cancel()
        await run_in_threadpool(manager.close)


def get_jobs(request: Request) -> JobManager:
    jobs: JobManager = request.app.state.jobs
    return jobs


JobsDep = Annotated[JobManager, Depends(get_jobs)]
router = APIRouter(prefix="/jobs", tags=["video jobs"], lifespan=lifespan)


@router.post("", status_code=202)
async def create_job(
    jobs: JobsDep,
    request: Request,
    video: Annotated[UploadFile, File(description="any video PyAV reads; audio is kept")],
    weights: Annotated[str | None, Form(description=WEIGHTS_HELP)] = None,
    schedule: Annotated[str | None, Form(description="keyframed blends, JSON or text (see docs)")] = None,
    model: Annotated[str | None, Form()] = None,
    strength: Annotated[str | None, Form(description="0 = original, 1 = fully stylized (default 1)")] = None,
    preserve_color: Annotated[str | None, Form(description="true or false (default false)")] = None,
    max_size: Annotated[int | None, Form(description="longer side of the result")] = None,
    stabilize: Annotated[str | None, Form(description="true: lower flicker with optical flow")] = None,
    brush: Annotated[str | None, Form(description=BRUSH_HELP + " (default 1)")] = None,
) -> JobStatus:
    """Upload a video; the result is an H.264 MP4 with the same timing and audio."""
    form: dict[str, Any] = {
        "weights": weights,
        "schedule": schedule,
        "model": model,
        "strength": strength,
        "preserve_color": preserve_color,
        "max_size": max_size,
        "stabilize": stabilize,
        "brush": brush,
    }
    options = options_from_form(form)
    options.on(get_services(request).engine)  # unknown models and styles answer before the upload is stored
    job_id, folder = jobs.new_folder()
    try:
        source = folder / "input"  # a fixed name: the client's file name never picks a demuxer
        await save_upload(video, source, jobs.settings.max_upload_bytes)
        await run_in_threadpool(probe_upload, source, jobs.settings.video_limits)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return JobStatus.of(jobs.submit(job_id, folder, source, options, form))


@router.get("/{job_id}")
async def job_status(job_id: str, jobs: JobsDep) -> JobStatus:
    return JobStatus.of(jobs.get(job_id))


@router.get("/{job_id}/result", response_class=FileResponse)
async def job_result(job_id: str, jobs: JobsDep) -> FileResponse:
    job = jobs.get(job_id)
    if job.state is not JobState.done:
        raise JobNotReady(f"job {job_id} is {job.state.value}; the result exists once it is done")
    return FileResponse(job.result, media_type="video/mp4", filename=f"{job_id}.mp4")


@router.delete("/{job_id}")
async def cancel_job(job_id: str, jobs: JobsDep) -> JobStatus:
    """Stop a job, or delete a finished one's files."""
    return JobStatus.of(jobs.cancel(job_id))


@router.post("/{job_id}/retry", status_code=202)
async def retry_job(job_id: str, jobs: JobsDep) -> JobStatus:
    """Queue a failed job again with its kept upload (409 when it is not failed or its upload is gone)."""
    return JobStatus.of(jobs.retry(job_id))


async def save_upload(upload: UploadFile, target: Path, limit: int) -> None:
    """Stream the upload to ``target``; 413 beyond ``limit`` bytes."""
    written = 0
    with target.open("wb") as handle:
        while block := await upload.read(1 << 20):
            written += len(block)
            if written > limit:
                raise PayloadTooLarge(f"the video is larger than the limit of {limit} bytes")
            handle.write(block)
