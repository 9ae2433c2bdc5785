"""A client of the video job routes for the tests: post an upload, wait for a state."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient


def post(client: TestClient, data: bytes, **fields: str) -> dict:  # type: ignore[type-arg]
    response = client.post("/api/jobs", files={"video": ("clip.mp4", data, "video/mp4")}, data=fields)
    return {"status": response.status_code, **response.json()}


def wait(client: TestClient, job_id: str, states: tuple[str, ...] = ("done", "failed", "cancelled")) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = client.get(f"/api/jobs/{job_id}").json()
        if body["state"] in states:
            return body  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {states}")
