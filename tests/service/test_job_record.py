"""The record every background job shares (service/jobs.py): written whole, read back, settled after a
restart, forgotten when old; video jobs and learned styles build on it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from service.errors import InsufficientStorage
from service.jobs import RECORD, RESTARTED, JobRecord, JobState, check_disk, forget_finished, restore_jobs


@dataclass(kw_only=True)
class Counting(JobRecord):
    items: tuple[str, ...]
    done: int = 0

    RECORDED = ("items", "done")

    @classmethod
    def rebuilt(cls, folder: Path, own: dict[str, Any]) -> dict[str, Any]:
        return {"items": tuple(own["items"])}


def job(root: Path, name: str, state: JobState, finished_at: float | None = None) -> Counting:
    folder = root / name
    folder.mkdir()
    made = Counting(id=name, folder=folder, items=("a", "b"), state=state, finished_at=finished_at)
    made.save()
    return made


def test_a_record_round_trips_and_an_unfinished_job_fails_on_restart(tmp_path: Path) -> None:
    job(tmp_path, "finished", JobState.done, finished_at=5.0)
    job(tmp_path, "working", JobState.running)
    (tmp_path / "upload-only").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / RECORD).write_text('{"id": "bad", "state": "sleeping"}')
    jobs = restore_jobs(Counting, tmp_path)
    assert sorted(jobs) == ["finished", "working"]
    assert jobs["finished"].state is JobState.done and jobs["finished"].items == ("a", "b")
    assert jobs["working"].state is JobState.failed and jobs["working"].error == RESTARTED
    assert json.loads((tmp_path / "working" / RECORD).read_text())["state"] == "failed"  # settled on disk too
    assert not (tmp_path / "upload-only").exists() and not (tmp_path / "bad").exists()
    assert not list(tmp_path.rglob("*.tmp"))


def test_old_finished_jobs_are_forgotten_with_their_files(tmp_path: Path) -> None:
    jobs = {
        j.id: j
        for j in (
            job(tmp_path, "old", JobState.done, 1.0),
            job(tmp_path, "new", JobState.failed, 9.0),
            job(tmp_path, "queued", JobState.queued),
        )
    }
    gone = forget_finished(jobs, lambda done: done[:1])  # oldest first
    assert [j.id for j in gone] == ["old"] and sorted(jobs) == ["new", "queued"]
    assert not (tmp_path / "old").exists() and (tmp_path / "new").exists()


def test_a_short_disk_is_507(tmp_path: Path) -> None:
    check_disk(tmp_path, 0)
    with pytest.raises(InsufficientStorage, match="disk space"):
        check_disk(tmp_path, 2**62)
