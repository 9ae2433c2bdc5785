"""Example app client: add your own picture as a style, follow its learning, then use it.

    python -m examples.add_style my_sketch.jpg --name my_sketch [--minutes 10] [--models realtime]
        [--url http://127.0.0.1:8000] [--token TOKEN] [--preview preview.png]

It uploads the picture to ``POST /api/styles``, polls ``GET /api/styles/jobs/{id}`` (step, losses, time left)
and saves the newest preview; Ctrl-C cancels the job (``DELETE /api/styles/jobs/{id}``). When it is done the
style is in ``GET /api/styles`` and any stream can blend it, e.g. ``{"weights": {"my_sketch": 1}}``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

FINISHED = ("done", "failed", "cancelled")


class AddStyleError(RuntimeError):
    """The server refused the picture or the job did not end done."""


def _checked(reply: httpx.Response) -> Any:
    if reply.status_code >= 400:
        detail = reply.json().get("detail") if "json" in reply.headers.get("content-type", "") else reply.text
        raise AddStyleError(f"{reply.request.method} {reply.request.url.path}: {reply.status_code} {detail}")
    return reply.json()


def add_style(
    url: str,
    picture: Path,
    name: str,
    minutes: float | None = None,
    steps: int | None = None,
    models: str | None = None,
    token: str | None = None,
    preview: Path | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    poll: float = 1.0,
) -> dict[str, Any]:
    """Upload ``picture`` as style ``name`` and wait for it; returns the finished job (AddStyleError unless done)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    fields = {
        k: str(v)
        for k, v in (("name", name), ("minutes", minutes), ("steps", steps), ("models", models))
        if v is not None
    }
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        with picture.open("rb") as handle:
            job = _checked(http.post("/api/styles", files={"image": (picture.name, handle)}, data=fields))
        try:
            while job["state"] not in FINISHED:
                time.sleep(poll)
                job = _checked(http.get(f"/api/styles/jobs/{job['id']}"))
                if preview is not None and job["preview_urls"]:
                    image = http.get(list(job["preview_urls"].values())[-1])
                    if image.status_code == 200:
                        preview.with_suffix(".partial.png").write_bytes(image.content)
                        preview.with_suffix(".partial.png").replace(preview)
                if on_progress is not None:
                    on_progress(job)
        except KeyboardInterrupt:
            _checked(http.delete(f"/api/styles/jobs/{job['id']}"))
            raise AddStyleError(f"cancelled the learning of {name!r}") from None
    if job["state"] != "done":
        raise AddStyleError(f"learning {name!r} {job['state']}: {job.get('error')}")
    return dict(job)


def show(job: dict[str, Any]) -> None:
    left = f", about {job['seconds_left']:.0f} s left" if job.get("seconds_left") is not None else ""
    style = job.get("losses", {}).get("style")
    loss = f", style loss {style:.3g}" if style is not None else ""
    sys.stderr.write(f"\r{job['state']} {job.get('model') or ''} step {job['step']}{loss}{left}    ")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.add_style", description=__doc__.split("\n")[0])
    parser.add_argument("picture", type=Path)
    parser.add_argument("--name", required=True, help="lowercase letters, digits and _")
    parser.add_argument("--minutes", type=float, help="learning budget per model (default: the server's)")
    parser.add_argument("--steps", type=int, help="or a step budget per model")
    parser.add_argument("--models", help="comma-separated models (default: all the server can learn on)")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", default=os.environ.get("LIVESTYLE_API_TOKEN"))
    parser.add_argument("--preview", type=Path, help="keep the newest preview PNG here")
    args = parser.parse_args(argv)
    if not args.picture.is_file():
        parser.error(f"{args.picture}: no such file")
    try:
        job = add_style(
            args.url, args.picture, args.name, args.minutes, args.steps, args.models, args.token, args.preview, show
        )
    except (AddStyleError, httpx.HTTPError) as exc:
        sys.stderr.write(f"\nadd_style: {exc}\n")
        raise SystemExit(2) from None
    sys.stderr.write(f"\n{args.name} is ready on {', '.join(job['models'])}\n")


if __name__ == "__main__":
    main()
