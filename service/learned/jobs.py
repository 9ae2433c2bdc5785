"""Learning uploaded pictures as styles: the queue of jobs behind ``/api/styles`` (its routes are in
service/http/routes/learned.py).

One job at a time runs in a worker process (``python -m training.learn``, niced, its torch threads limited) so
live streams keep their frame rate; the rest wait in a short queue. Everything here runs on the event loop; the
slow parts (decoding, installing a model) go to threads. See service/learned/store.py for the store and the swap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

from service.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
)
from service.jobs import JobState, check_disk, find, forget_finished, restore_jobs
from service.learned.store import (
    NAME,
    RESERVED,
    LearningInfo,
    LearningPhotos,
    Store,
    StyleJob,
    StyleSettings,
    learning_setup,
    photos_in,
)

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[2]


class Learning:
    """The style jobs: queue, worker process, cancel, restore after a restart. Event-loop only."""

    def __init__(self, store: Store, settings: StyleSettings) -> None:
        self.store = store
        self.settings = settings
        self.jobs: dict[str, StyleJob] = {}
        self.queue: asyncio.Queue[StyleJob] = asyncio.Queue()
        self.models = [m for m in store.bundled if (store.bundled_dir / "checkpoints" / f"{m}.pt").is_file()]
        setup = learning_setup(settings, self.models)
        self.photos = setup if isinstance(setup, LearningPhotos) else None
        self.unavailable = setup if isinstance(setup, str) else None
        self.jobs_dir = store.folder / "jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self._restore()

    def _restore(self) -> None:
        self.jobs = restore_jobs(StyleJob, self.jobs_dir)
        self._prune()

    def _prune(self) -> None:
        """Keep the records and previews of the last ``keep_jobs`` finished jobs."""
        forget_finished(self.jobs, lambda done: done[: max(0, len(done) - self.settings.keep_jobs)])

    def info(self) -> LearningInfo:
        return LearningInfo(
            available=self.unavailable is None,
            reason=self.unavailable,
            photos=self.photos.origin if self.photos and not self.unavailable else None,
            models=self.models,
            minutes=self.settings.minutes,
            max_minutes=self.settings.max_minutes,
            max_upload_bytes=self.settings.max_upload_bytes,
        )

    def check_capacity(self) -> None:
        """Before an upload is read: learning available, queue room, disk."""
        if self.unavailable:  # a 4xx: this deployment does not offer it (the reason says how to get it)
            raise Forbidden(f"this server does not learn styles: {self.unavailable}")
        waiting = sum(j.state is JobState.queued for j in self.jobs.values())
        running = any(j.state in (JobState.learning, JobState.installing) for j in self.jobs.values())
        if waiting >= self.settings.max_queued + (0 if running else 1):
            raise TooManyRequests(f"{waiting} style jobs are waiting already; try again later", retry_after=60)
        check_disk(self.store.folder, self.settings.min_free_bytes)

    def check_name(self, name: str) -> None:
        if not NAME.match(name) or name in RESERVED or name.startswith("dream_"):
            raise BadRequest(
                "a style name is 1-40 lowercase letters, digits and _, starting with a letter "
                f"(not 'dream_...', {', '.join(sorted(RESERVED))}), got {name[:60]!r}"
            )
        taken = {s for m in self.store.engine.models.values() for s in m.styles}
        if name in taken:
            raise Conflict(f"a style named {name!r} exists; choose another name or delete it first")
        if any(j.name == name and j.kind == "add" and not j.finished for j in self.jobs.values()):
            raise Conflict(f"a style named {name!r} is being learned already")
        if len(self.store.added()) >= self.settings.max_added:
            raise Conflict(f"this server holds at most {self.settings.max_added} added styles; delete one first")

    def _new_job(
        self,
        kind: str,
        name: str,
        models: tuple[str, ...],
        minutes: float = 0.0,
        steps: int = 0,
        sha: str | None = None,
    ) -> StyleJob:
        job_id = uuid.uuid4().hex
        folder = self.jobs_dir / job_id
        folder.mkdir(parents=True)
        return StyleJob(
            id=job_id,
            folder=folder,
            kind=kind,
            name=name,
            models=models,
            minutes=minutes,
            steps=steps,
            source_sha256=sha,
        )

    def submit_add(
        self, name: str, picture_png: bytes, sha: str, models: tuple[str, ...], minutes: float, steps: int
    ) -> StyleJob:
        self.check_capacity()
        self.check_name(name)
        job = self._new_job("add", name, models, minutes, steps, sha)
        (job.folder / f"{name}.png").write_bytes(picture_png)
        return self._queue(job)

    def submit_remove(self, name: str) -> StyleJob:
        added = {m: self.store.added(m) for m in self.store.engine.models}
        owners = tuple(m for m, styles in added.items() if name in styles)
        if not owners:
            if any(name in m.styles for m in self.store.engine.models.values()):
                raise Forbidden(f"{name!r} is a bundled style; only styles added here can be removed")
            raise NotFound(f"no style {name!r}")
        quick = tuple(m for m in owners if len(added[m]) == 1)  # its model's only added style: serve the bundled
        if self.unavailable and len(quick) < len(owners):
            raise Forbidden(f"removing {name!r} rebuilds a model, and {self.unavailable}")
        job = self._new_job("remove", name, owners)
        for model in quick:
            self.store.revert(model, name)
        job.models = tuple(m for m in owners if m not in quick)
        if not job.models:
            job.models, job.state, job.finished_at = owners, JobState.done, time.time()
            job.save()
            self.jobs[job.id] = job
            return job
        return self._queue(job)

    def _queue(self, job: StyleJob) -> StyleJob:
        job.save()
        self.jobs[job.id] = job
        self.queue.put_nowait(job)
        self._prune()
        return job

    def get(self, job_id: str) -> StyleJob:
        return find(self.jobs, job_id, "style job")

    def cancel(self, job_id: str) -> StyleJob:
        """Stop a queued or learning job; nothing it made is installed."""
        job = self.get(job_id)
        if job.state in (JobState.queued, JobState.learning):
            if job.process is not None and job.process.returncode is None:
                job.process.terminate()
            self._finish(job, JobState.cancelled)
        return job

    def _finish(self, job: StyleJob, state: JobState, error: str | None = None) -> None:
        job.state, job.error, job.finished_at = state, error, time.time()
        shutil.rmtree(job.folder / "out", ignore_errors=True)
        shutil.rmtree(job.folder / "run", ignore_errors=True)
        job.save()

    def request_for(self, job: StyleJob) -> dict[str, object]:
        assert self.photos is not None
        photos = photos_in(self.photos.folder)
        held_out = [p for p in photos if p.name.startswith("bsds_val_")] or photos[-3:]
        pictures: dict[str, str] = {}
        for folder in self.store.thumbnails.folders:  # what the gallery shows: the bundled, then the added
            pictures |= {p.stem: str(p) for p in folder.glob("*.jpg")} if folder.is_dir() else {}
        return {
            "name": job.name,
            "image": str(job.folder / f"{job.name}.png") if job.kind == "add" else None,
            "targets": [
                {"model": m, "tier": self.store.bundled[m].entry.tier, "checkpoint": str(self.store.checkpoint_for(m))}
                for m in job.models
            ],
            "content_dir": str(self.photos.folder),
            "minutes": job.minutes,
            "steps": job.steps,
            "threads": self.settings.threads,
            "style_pictures": pictures,
            "preview_photo": str(held_out[0]),
            "measure_on": [str(p) for p in held_out[:3]],
            "remove": [job.name] if job.kind == "remove" else [],
            "exclude": ["bsds_val_*"],
        }

    async def run_forever(self) -> None:
        while True:
            job = await self.queue.get()
            if job.state is not JobState.queued:
                continue
            try:
                await self._run(job)
            except Exception:  # a bug must not stop the queue
                log.exception("style job %s failed", job.id)
                if not job.finished:
                    self._finish(job, JobState.failed, "internal error")

    async def _run(self, job: StyleJob) -> None:
        job.state = JobState.learning
        job.save()
        (job.folder / "request.json").write_text(json.dumps(self.request_for(job)))
        env = os.environ | {
            "OMP_NUM_THREADS": str(self.settings.threads),
            "MKL_NUM_THREADS": str(self.settings.threads),
            "PYTHONPATH": str(REPO_ROOT),
        }
        nice = self.settings.nice
        with (job.folder / "learn.log").open("wb") as log_file:
            job.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "training.learn",
                str(job.folder),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                env=env,
                cwd=str(REPO_ROOT),
                preexec_fn=(lambda: os.nice(nice)) if nice else None,
            )
            if job.state is JobState.cancelled:  # cancelled while the worker was starting
                job.process.terminate()
            code = await job.process.wait()
        job.process = None
        if job.state is JobState.cancelled:
            return
        if code != 0:
            self._finish(job, JobState.failed, worker_error(job.folder / "learn.log", code))
            return
        job.state = JobState.installing
        job.save()
        try:
            await asyncio.to_thread(self.store.install, job.folder / "out", job)
        except Exception as exc:
            log.exception("installing style job %s failed", job.id)
            self._finish(job, JobState.failed, f"the learned model could not be installed: {type(exc).__name__}")
            return
        self._finish(job, JobState.done)
        log.info("style %r %s on %s", job.name, "added" if job.kind == "add" else "removed", ", ".join(job.models))

    async def close(self) -> None:
        for job in self.jobs.values():
            if job.process is not None and job.process.returncode is None:
                job.process.terminate()
                with contextlib.suppress(ProcessLookupError):
                    await job.process.wait()


def worker_error(log_path: Path, code: int) -> str:
    """The worker's last line that says what went wrong (no server paths), or its exit status."""
    try:
        lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        lines = []
    last = next((ln for ln in reversed(lines) if ln.startswith(("learn:", "livestyle")) or "Error" in ln), None)
    if last is None:
        return f"learning stopped (worker exit status {code})"
    return last.replace(str(log_path.parent), "the job")[:300]
