"""Video jobs: a bounded queue of uploaded videos painted on worker threads, each with a durable record.

Jobs run on their own worker threads, off the request path, so a client may disconnect and come
back; the queue is bounded and a full one answers 503.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from service.engine import Engine
from service.errors import ServiceBusy, ServiceError
from service.jobs import JobRecord, JobState, check_disk, find, forget_finished, restore_jobs
from service.look import LookUpdate
from service.settings import JobSettings
from service.video.pipeline import Cancelled, VideoOptions, process_video
from service.video.schedule import parse_schedule

log = logging.getLogger(__name__)


class JobNotReady(ServiceError):
    status_code = 409


@dataclass(kw_only=True)
class Job(JobRecord):
    """A video job: its upload, its options and its progress (the rest is every job's: service/jobs.py)."""

    source: Path
    options: VideoOptions = field(default_factory=VideoOptions)
    frames_done: int = 0
    frames_total: int | None = None
    warning: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    form: dict[str, Any] | None = None  # the request's look fields, kept so the job can be rebuilt after a restart

    RECORDED = ("frames_done", "frames_total", "warning", "form")

    @property
    def result(self) -> Path:
        return self.folder / "result.mp4"

    @classmethod
    def rebuilt(cls, folder: Path, own: dict[str, Any]) -> dict[str, Any]:
        """The upload's fixed name, and the options from the recorded form (a job without one keeps the default
        look: it can be listed, not retried)."""
        form = own.get("form")
        if form is not None and not isinstance(form, dict):
            raise TypeError("a job's form is an object")
        return {"source": folder / "input", "options": options_from_form(form) if form else VideoOptions()}

    def after_restart(self) -> None:
        """A result whose file is gone is failed; an unfinished job's upload goes with its work."""
        if self.state is JobState.done and not self.result.is_file():
            self.state, self.error = JobState.failed, "the result file was lost"
        if not self.finished:
            self.source.unlink(missing_ok=True)
        super().after_restart()


class JobStatus(BaseModel):
    id: str
    state: JobState
    frames_done: int
    frames_total: int | None
    progress: float | None = Field(description="0..1 when the frame count is known")
    error: str | None
    warning: str | None = Field(description="e.g. where a damaged input stopped decoding")
    result_url: str | None

    @classmethod
    def of(cls, job: Job) -> JobStatus:
        total = job.frames_total
        return cls(
            id=job.id,
            state=job.state,
            frames_done=job.frames_done,
            frames_total=total,
            progress=min(1.0, job.frames_done / total) if total else None,
            error=job.error,
            warning=job.warning,
            result_url=f"/api/jobs/{job.id}/result" if job.state is JobState.done else None,
        )


class JobManager:
    """Owns the job table, the worker threads and the files; thread-safe."""

    def __init__(self, engine: Engine, settings: JobSettings, work_dir: Path) -> None:
        self.engine = engine
        self.settings = settings
        self.work_dir = work_dir
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="video-job")
        self._restore()

    def _restore(self) -> None:
        """Jobs of an earlier run of the server (service/jobs.py settles them)."""
        self._jobs = restore_jobs(Job, self.work_dir)
        if self._jobs:
            log.info(
                "%d video jobs from before the restart (%d finished results)",
                len(self._jobs),
                sum(j.state is JobState.done for j in self._jobs.values()),
            )
        self.expire()

    def new_folder(self) -> tuple[str, Path]:
        job_id = uuid.uuid4().hex
        folder = self.work_dir / job_id
        folder.mkdir(parents=True)
        return job_id, folder

    def expire(self, now: float | None = None) -> int:
        """Delete finished jobs older than ``keep_hours`` (their files and records); returns how many."""
        limit = (now if now is not None else time.time()) - 3600 * self.settings.keep_hours
        with self._lock:
            return len(forget_finished(self._jobs, lambda done: [j for j in done if (j.finished_at or 0) < limit]))

    def check_capacity(self) -> None:
        """ServiceBusy when the queue is full: asked before an upload is read, and again when it is queued."""
        with self._lock:
            self._check_capacity()

    def _check_capacity(self) -> None:
        waiting = sum(j.state is JobState.queued for j in self._jobs.values())
        if waiting >= self.settings.max_queued:
            raise ServiceBusy(f"{waiting} video jobs are waiting already; try again later", retry_after=30)
        check_disk(self.work_dir, self.settings.min_free_bytes)

    def submit(
        self, job_id: str, folder: Path, source: Path, options: VideoOptions, form: dict[str, Any] | None = None
    ) -> Job:
        """Queue a job whose upload is already in ``folder``; ServiceBusy when the queue is full. ``form``: the
        look fields it was built from (:func:`options_from_form`), recorded so a retry after a restart is the same
        job."""
        with self._lock:
            try:
                self._check_capacity()
            except ServiceBusy:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            job = self._jobs[job_id] = Job(id=job_id, folder=folder, source=source, options=options, form=form)
            job.save()
        self._pool.submit(self._run, job)
        return job

    def retry(self, job_id: str) -> Job:
        """Queue a failed job again; its upload is kept when it fails (until it expires)."""
        job = self.get(job_id)
        with self._lock:
            if job.state is not JobState.failed:
                raise JobNotReady(f"job {job_id} is {job.state.value}; only a failed job can be retried")
            if not job.source.is_file():
                raise JobNotReady(f"job {job_id}'s upload is gone; upload it again")
            if job.form is None:
                raise JobNotReady(f"job {job_id}'s settings were not recorded; upload it again")
            self._check_capacity()
            job.state, job.error, job.frames_done, job.finished_at = JobState.queued, None, 0, None
            job.cancel.clear()
            job.save()
        self._pool.submit(self._run, job)
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            return find(self._jobs, job_id, "video job")

    def cancel(self, job_id: str) -> Job:
        """Stop a queued or running job and delete its files; a finished job's files are deleted too."""
        job = self.get(job_id)
        job.cancel.set()
        with self._lock:
            if job.state in (JobState.queued, JobState.done, JobState.failed):
                job.state = JobState.cancelled
                job.finished_at = job.finished_at or time.time()
                shutil.rmtree(job.folder, ignore_errors=True)  # the record goes too: a restart forgets it
        return job

    def close(self) -> None:
        for job in list(self._jobs.values()):
            job.cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self, job: Job) -> None:
        with self._lock:
            if job.state is not JobState.queued:
                return
            job.state = JobState.running
            job.save()

        def progress(done: int, total: int | None) -> None:
            job.frames_done, job.frames_total = done, total

        try:
            result = process_video(job.source, job.result, self.engine, job.options, progress, job.cancel)
        except Cancelled:
            self._finish(job, JobState.cancelled)
        except ServiceError as exc:
            self._finish(job, JobState.failed, error=self._public(str(exc), job))
        except Exception as exc:  # a bug must not kill the worker thread
            log.exception("video job %s failed", job.id)
            self._finish(job, JobState.failed, error=self._public(f"internal error: {type(exc).__name__}", job))
        else:
            self._finish(job, JobState.done, warning=result.stopped)

    @staticmethod
    def _public(message: str, job: Job) -> str:
        """What a client may read: no server paths."""
        return (
            message.replace(str(job.source), "the upload")
            .replace(str(job.result), "the result")
            .replace(str(job.folder), "the job")
        )

    def _finish(self, job: Job, state: JobState, error: str | None = None, warning: str | None = None) -> None:
        with self._lock:
            job.error, job.warning, job.finished_at = error, warning, time.time()
            job.state = JobState.cancelled if job.cancel.is_set() else state
            if job.state is JobState.cancelled:
                shutil.rmtree(job.folder, ignore_errors=True)
                return
            if job.state is JobState.done:
                job.source.unlink(missing_ok=True)  # a failed job keeps its upload, to retry
            job.save()


def options_from_form(form: dict[str, Any]) -> VideoOptions:
    """A job's options from its form fields (the upload's, or its record's after a restart)."""
    look = LookUpdate.from_text(
        {k: form.get(k) for k in ("weights", "model", "strength", "preserve_color", "stabilize", "brush")}
    )
    max_size, schedule = form.get("max_size"), form.get("schedule")
    return VideoOptions(
        look=look,
        schedule=parse_schedule(schedule) if schedule else None,
        max_size=int(max_size) if max_size is not None else None,
    )
