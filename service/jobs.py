"""What every background job shares (video jobs: service/video/jobs.py; learned styles: service/learned/jobs.py):
its states, its durable record beside its files, what a server restart does to it, the disk check before an
upload, and forgetting old finished jobs. Each feature keeps only what differs: its own fields, its work, its
status reply."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

from service.errors import InsufficientStorage, NotFound, ServiceError

RECORD = "job.json"
RESTARTED = "interrupted by a server restart"


class JobState(StrEnum):
    queued = "queued"
    running = "running"  # a video being painted
    learning = "learning"  # a style being learned in its worker process
    installing = "installing"  # a learned style going into the model served
    done = "done"
    failed = "failed"
    cancelled = "cancelled"


FINAL = frozenset({JobState.done, JobState.failed, JobState.cancelled})


@dataclass(kw_only=True)
class JobRecord:
    """One job and its folder; ``job.json`` in the folder is its durable record (written whole under a temporary
    name, so a crash leaves the old record or the new one, never half of one)."""

    id: str
    folder: Path
    state: JobState = JobState.queued
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    RECORDED: ClassVar[tuple[str, ...]] = ()  # the feature's own fields that go into the record as they are

    @property
    def finished(self) -> bool:
        return self.state in FINAL

    def record(self) -> dict[str, Any]:
        """What ``job.json`` holds: the common fields and the feature's :attr:`RECORDED` ones."""
        return {
            "id": self.id,
            "state": self.state.value,
            "error": self.error,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            **{name: getattr(self, name) for name in self.RECORDED},
        }

    def save(self) -> None:
        tmp = self.folder / f"{RECORD}.tmp"
        tmp.write_text(json.dumps(self.record()))
        tmp.replace(self.folder / RECORD)

    @classmethod
    def from_record(cls, folder: Path, record: dict[str, Any]) -> Self:
        """The job a record describes (a KeyError, TypeError or ValueError: not a record of this kind)."""
        own = {name: record[name] for name in cls.RECORDED if name in record}  # a missing one: its default
        return cls(
            id=str(record["id"]),
            folder=folder,
            state=JobState(record["state"]),
            error=record["error"],
            created_at=float(record["created_at"]),
            finished_at=record["finished_at"],
            **(own | cls.rebuilt(folder, own)),
        )

    @classmethod
    def rebuilt(cls, folder: Path, own: dict[str, Any]) -> dict[str, Any]:
        """The feature's fields made again from the recorded ones (and any that replace a recorded one's
        JSON form, such as a tuple read back as a list)."""
        return {}

    @classmethod
    def restored(cls, folder: Path) -> Self | None:
        """A job of an earlier run of the server, settled (see :meth:`after_restart`); None: no readable record."""
        try:
            job = cls.from_record(folder, json.loads((folder / RECORD).read_text()))
        except (OSError, ValueError, KeyError, TypeError, ServiceError):
            return None
        job.after_restart()
        job.save()
        return job

    def after_restart(self) -> None:
        """A finished job stays as it was; one that was queued or working failed, since its work stopped with
        the server (the feature drops what that work left half-made)."""
        if not self.finished:
            self.state, self.error, self.finished_at = JobState.failed, RESTARTED, time.time()


Job = TypeVar("Job", bound=JobRecord)


def restore_jobs(kind: type[Job], folder: Path) -> dict[str, Job]:
    """The jobs recorded under ``folder`` (made if missing); a folder without a record is an upload that never
    became a job, and is removed."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs: dict[str, Job] = {}
    for path in sorted(folder.iterdir()):
        job = kind.restored(path) if path.is_dir() else None
        if job is None:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
        else:
            jobs[job.id] = job
    return jobs


def forget_finished(jobs: dict[str, Job], old: Callable[[list[Job]], list[Job]]) -> list[Job]:
    """Delete the finished jobs ``old`` picks from them (oldest first), with their files and records."""
    finished = sorted((j for j in jobs.values() if j.finished), key=lambda j: j.finished_at or j.created_at)
    gone = old(finished)
    for job in gone:
        del jobs[job.id]
        shutil.rmtree(job.folder, ignore_errors=True)
    return gone


def find(jobs: dict[str, Job], job_id: str, what: str) -> Job:
    """The job of that id, or 404 naming the kind of job (``what``)."""
    job = jobs.get(job_id)
    if job is None:
        raise NotFound(f"no {what} {job_id!r}")
    return job


def check_disk(folder: Path, min_free_bytes: int) -> None:
    """507 before an upload is taken when the disk under ``folder`` is short."""
    free = shutil.disk_usage(folder).free
    if free < min_free_bytes:
        raise InsufficientStorage(f"the server is short of disk space ({free // 2**20} MiB free); try again later")
