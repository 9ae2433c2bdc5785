"""Video jobs over real HTTP through the app: upload, poll, download, cancel, full queue."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
from clips import FRAMES, write_clip
from fastapi.testclient import TestClient
from job_client import post, wait

from service.http.app import create_app
from service.settings import JobSettings, Settings
from service.video import jobs


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4").read_bytes()


@pytest.fixture
def client(settings: Settings, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(settings)
    app.state.job_settings = JobSettings(max_queued=1, work_dir=tmp_path)
    with TestClient(app) as test_client:
        yield test_client


def test_job_lifecycle(client: TestClient, clip_bytes: bytes, tmp_path: Path) -> None:
    job = post(client, clip_bytes, weights="the_scream=1", stabilize="true")
    assert job["status"] == 202 and job["state"] in ("queued", "running", "done")
    done = wait(client, job["id"])
    assert done["state"] == "done", done
    assert done["frames_done"] == FRAMES and done["progress"] == 1.0 and done["error"] is None
    result = client.get(done["result_url"])
    assert result.status_code == 200 and result.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(result.content)) as container:
        assert container.streams.audio and sum(1 for _ in container.decode(video=0)) == FRAMES
    assert client.delete(f"/api/jobs/{job['id']}").json()["state"] == "cancelled"
    assert client.get(f"/api/jobs/{job['id']}/result").status_code == 409
    assert list(tmp_path.iterdir()) == []  # cancelling a finished job deletes its files


def test_bad_uploads_are_4xx_and_leave_nothing(client: TestClient, clip_bytes: bytes, tmp_path: Path) -> None:
    not_video = post(client, b"plain text, no frames")
    assert not_video["status"] == 415 and "not a video" in not_video["detail"]
    unknown = post(client, clip_bytes, weights="picasso=1")
    assert unknown["status"] == 400 and "picasso" in unknown["detail"]
    schedule = post(client, clip_bytes, schedule="0 starry_night=1\nlater the_scream=1")
    assert schedule["status"] == 400 and "line 2" in schedule["detail"]
    assert client.get("/api/jobs/nope").status_code == 404
    assert list(tmp_path.iterdir()) == []


def test_full_queue_answers_503_and_cancel_stops_a_running_job(
    client: TestClient, clip_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    original = jobs.process_video

    def held(*args, **kwargs):  # type: ignore[no-untyped-def]
        release.wait(10)  # keeps the one worker busy until the queue has been tested
        return original(*args, **kwargs)

    monkeypatch.setattr(jobs, "process_video", held)
    running = post(client, clip_bytes)
    wait(client, running["id"], ("running",))
    queued = post(client, clip_bytes)
    assert queued["status"] == 202 and queued["state"] == "queued"
    full = post(client, clip_bytes)
    assert full["status"] == 503 and "try again" in full["detail"]
    assert client.delete(f"/api/jobs/{queued['id']}").json()["state"] == "cancelled"
    client.delete(f"/api/jobs/{running['id']}")
    release.set()
    assert wait(client, running["id"])["state"] == "cancelled"
    assert client.get(f"/api/jobs/{running['id']}/result").status_code == 409
