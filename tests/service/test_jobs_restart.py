"""Video jobs on a public host: results survive a restart, interrupted jobs are reported, old results expire,
uploads are probed (container allowlist, pixel/frame/duration limits) before they queue, no server path leaks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

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


def serve(settings: Settings, job_settings: JobSettings) -> TestClient:
    return TestClient(create_app(settings, job_settings))


def test_finished_results_survive_a_restart_and_interrupted_jobs_are_failed(
    settings: Settings, clip_bytes: bytes, tmp_path: Path
) -> None:
    job_settings = JobSettings(work_dir=tmp_path, min_free_bytes=0)
    with serve(settings, job_settings) as client:
        done = wait(client, post(client, clip_bytes)["id"])
        assert done["state"] == "done"
        before = client.get(done["result_url"]).content
    # a job that was running when the server stopped: its record says running
    stale = tmp_path / "0"
    stale.mkdir()
    (stale / "input").write_bytes(clip_bytes)
    (stale / "job.json").write_text(
        '{"id": "0", "state": "running", "frames_done": 3, "frames_total": 24, '
        '"error": null, "warning": null, "created_at": 1.0, "finished_at": null}'
    )
    (tmp_path / "half-uploaded").mkdir()  # an upload that never became a job
    with serve(settings, job_settings) as client:
        again = client.get(f"/api/jobs/{done['id']}").json()
        assert again["state"] == "done" and again["frames_done"] == FRAMES
        assert client.get(again["result_url"]).content == before
        interrupted = client.get("/api/jobs/0").json()
        assert interrupted["state"] == "failed" and "restart" in interrupted["error"]
        assert client.post("/api/jobs/0/retry").status_code == 409  # its options died with the process
    assert not (tmp_path / "half-uploaded").exists() and not (stale / "input").exists()


def test_a_failed_job_keeps_its_upload_and_can_be_retried(
    settings: Settings, clip_bytes: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = jobs.process_video
    calls: list[Path] = []

    def flaky(src: Path, *args: object, **kwargs: object) -> object:
        calls.append(src)
        if len(calls) == 1:
            raise OSError(f"No space left on device: {src}")
        return original(src, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jobs, "process_video", flaky)
    with serve(settings, JobSettings(work_dir=tmp_path, min_free_bytes=0)) as client:
        first = wait(client, post(client, clip_bytes)["id"])
        assert first["state"] == "failed" and str(tmp_path) not in first["error"]
        retried = client.post(f"/api/jobs/{first['id']}/retry")
        assert retried.status_code == 202
        assert wait(client, first["id"])["state"] == "done"
        assert client.post(f"/api/jobs/{first['id']}/retry").status_code == 409  # done: nothing to retry
    assert calls[0] == calls[1]


def test_a_job_retried_after_a_restart_runs_with_its_own_settings(
    settings: Settings, clip_bytes: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = jobs.process_video
    seen: list[jobs.VideoOptions] = []

    def flaky(src: Path, dst: Path, engine: object, options: jobs.VideoOptions, *args: object) -> object:
        seen.append(options)
        if len(seen) == 1:
            raise OSError("No space left on device")
        return original(src, dst, engine, options, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(jobs, "process_video", flaky)
    job_settings = JobSettings(work_dir=tmp_path, min_free_bytes=0)
    fields = {
        "weights": '{"starry_night": 0.25, "the_scream": 0.75}',
        "strength": "0.6",
        "brush": "2",
        "max_size": "48",
        "preserve_color": "true",
    }
    with serve(settings, job_settings) as client:
        failed = wait(client, post(client, clip_bytes, **fields)["id"])
        assert failed["state"] == "failed"
    with serve(settings, job_settings) as client:  # a restart: only job.json is left of the request
        assert client.post(f"/api/jobs/{failed['id']}/retry").status_code == 202
        assert wait(client, failed["id"])["state"] == "done"
    first, again = seen
    assert again == first and again.look.strength == 0.6 and again.look.brush == 2 and again.max_size == 48
    assert again.look.preserve_color and again.look.weights == {"starry_night": 0.25, "the_scream": 0.75}


def test_old_results_expire(settings: Settings, clip_bytes: bytes, tmp_path: Path) -> None:
    with serve(settings, JobSettings(work_dir=tmp_path, keep_hours=1, min_free_bytes=0)) as client:
        job = wait(client, post(client, clip_bytes)["id"])
        manager: jobs.JobManager = client.app.state.jobs  # type: ignore[attr-defined]
        assert manager.expire(now=time.time() + 1800) == 0
        assert manager.expire(now=time.time() + 3700) == 1
        assert client.get(f"/api/jobs/{job['id']}").status_code == 404
    assert list(tmp_path.iterdir()) == []


def test_a_short_disk_answers_507_before_the_upload(settings: Settings, clip_bytes: bytes, tmp_path: Path) -> None:
    with serve(settings, JobSettings(work_dir=tmp_path, min_free_bytes=2**62)) as client:
        refused = post(client, clip_bytes)
        assert refused["status"] == 507 and "disk space" in refused["detail"]
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def client(settings: Settings, tmp_path: Path) -> Iterator[TestClient]:
    limits = JobSettings(work_dir=tmp_path, min_free_bytes=0, max_pixels=32 * 32, max_frames=10)
    with serve(settings, limits) as test_client:
        yield test_client


def test_uploads_are_probed_before_they_queue(client: TestClient, clip_bytes: bytes, tmp_path: Path) -> None:
    big = post(client, clip_bytes)  # 64x48 frames against a 32x32 limit
    assert big["status"] == 413 and "64x48" in big["detail"]
    playlist = b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nclip.mp4\n#EXT-X-ENDLIST\n"
    hls = client.post("/api/jobs", files={"video": ("list.m3u8", playlist, "application/vnd.apple.mpegurl")})
    assert hls.status_code == 415 and str(tmp_path) not in hls.json()["detail"]
    # FFmpeg's concat demuxer would read any file the script names: another job's result, say
    concat = client.post("/api/jobs", files={"video": ("a.mp4", b"ffconcat version 1.0\nfile ../other/result.mp4\n")})
    assert concat.status_code == 415
    text = post(client, b"plain text, no frames")
    assert text["status"] == 415 and "/" not in text["detail"]  # no server path in the message
    assert list(tmp_path.iterdir()) == []


def test_frame_limit(settings: Settings, clip_bytes: bytes, tmp_path: Path) -> None:
    with serve(settings, JobSettings(work_dir=tmp_path, min_free_bytes=0, max_frames=10)) as client:
        long = post(client, clip_bytes)
        assert long["status"] == 413 and f"{FRAMES} frames" in long["detail"]
