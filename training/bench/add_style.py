"""Table 8: your own painting through the API, learned while a live stream runs on the same machine.

The yardstick is the same painting learned the long way: a bundled painting is uploaded again under a new name
to ``POST /api/styles`` of a real ``livestyle-serve`` (its own thumbnail hidden, so learning starts from the
nearest *other* painting, as any new picture would), learned for the budget by the server's worker process
while an aiortc peer streams 640x480 frames, then the added row, the bundled row and the starting row are scored
(QUALITY-METRIC.md) on held-out photos at 256 px and as 640x480 frames, all through ``/api/stylize``. The same
upload is learned again, for the same budget, on the server's starter set (no photo folder given) and scored on
the same held-out photos.
"""

from __future__ import annotations

import asyncio
import io
import logging
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image

from service.live.signalling import loopback_host_addresses
from training import images
from training.bench.reliability import Camera, Counter, rates, server
from training.bench.report import Table, fmt
from training.features import CONTENT_TAP, STYLE_TAPS, load_vgg
from training.losses import gram
from training.quality import LiveScorer, live_frame, metric_content, metric_style, score_against

log = logging.getLogger(__name__)
GOAL_MINUTES, GOAL_FACTOR, PREVIEW_GOAL, FPS_GOAL = 10.0, 1.5, 30.0, 0.7
STARTER_GOAL = 1.1  # the starter set's style loss against the photo folder's, same budget
ADDED_SUFFIX = "_added"


@dataclass(frozen=True)
class AddStylePlan:
    models_dir: Path  # the bundled models, with checkpoints/ and thumbnails/
    model: str  # the realtime model's name
    painting: Path  # a painting the model already has, uploaded again under a new name
    content_dir: Path  # the photos the server learns on
    photos: tuple[Path, ...]  # held out: scored and shown (never in the starter set)
    sheet: Path
    minutes: float = GOAL_MINUTES
    size: int = 256  # the metric's size; smaller only in tests
    stream_seconds: float = 15.0  # the live stream's frame rate before learning, measured this long
    starter: bool = True  # learn it again on the server's starter set (no photo folder) for the same budget


@dataclass(frozen=True)
class AddStyleResult:
    steps: int
    seconds: float  # upload to a usable style (learning, export, swap)
    preview_seconds: float  # upload to the first preview
    started_from: str
    fps_before: float
    fps_during: float
    scores: dict[str, tuple[float, float, float, float]]  # row -> style, content at 256 px; style, content live
    starter: tuple[str, int] | None = None  # the starter set's row label and its steps


async def _learn_while_streaming(url: str, plan: AddStylePlan, upload: Path) -> dict[str, float | str | int]:
    from examples.client import StyleClient  # the example app client, run from the checkout

    client = StyleClient(url)
    remote = await client.connect(Camera(), model=plan.model, weights={plan.painting.stem: 1})
    counter = Counter()
    counter.start(remote)
    try:
        await asyncio.sleep(3.0)  # the first frames and the encoder settle
        (before,) = await rates([counter], plan.stream_seconds)
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            started, frames = time.monotonic(), counter.frames
            reply = await http.post(
                "/api/styles",
                files={"image": (upload.name, upload.read_bytes())},
                data={"name": upload.stem, "models": plan.model, "minutes": str(plan.minutes)},
            )
            if reply.status_code != 202:
                raise RuntimeError(f"POST /api/styles: {reply.status_code} {reply.text}")
            job, preview = reply.json(), float("nan")
            while job["state"] not in ("done", "failed", "cancelled"):
                await asyncio.sleep(1.0)
                job = (await http.get(f"/api/styles/jobs/{job['id']}")).json()
                if job["preview_urls"] and preview != preview:
                    preview = time.monotonic() - started
            seconds = time.monotonic() - started
            during = (counter.frames - frames) / seconds
        if job["state"] != "done":
            raise RuntimeError(f"learning {upload.stem} {job['state']}: {job['error']}")
        return {
            "steps": job["step"],
            "seconds": seconds,
            "preview": preview,
            "from": job["started_from"] or "",
            "before": before,
            "during": during,
        }
    finally:
        await client.close()


def _stylize(url: str, rgb: np.ndarray, style: str) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    reply = httpx.post(
        f"{url}/api/stylize", files={"image": ("p.png", buffer.getvalue())}, data={"weights": f"{style}=1"}, timeout=120
    )
    reply.raise_for_status()
    return np.asarray(Image.open(io.BytesIO(reply.content)).convert("RGB"))


def _score(
    url: str, plan: AddStylePlan, rows: dict[str, str]
) -> tuple[dict[str, tuple[float, ...]], list[list[Image.Image]]]:
    vgg = load_vgg((*STYLE_TAPS, CONTENT_TAP))
    live = LiveScorer(vgg)
    with torch.no_grad():
        grams = {k: gram(v) for k, v in vgg(metric_style(plan.painting)).items()}
        per_row: dict[str, list[tuple[float, ...]]] = {label: [] for label in rows}
        sheet = []
        for photo in plan.photos:
            content = metric_content(photo)
            if plan.size != content.shape[-1]:
                content = torch.nn.functional.interpolate(content, size=(plan.size, plan.size), mode="area")
            small = np.asarray(images.to_image(content))
            features = vgg(content)[CONTENT_TAP]
            frame = live_frame(photo)
            pictures = [Image.fromarray(small)]
            for label, style in rows.items():
                out = _stylize(url, small, style)
                at_256 = score_against(vgg, images.to_tensor(Image.fromarray(out)), grams, features)
                at_live = live.score(_stylize(url, frame, style), frame, plan.painting)
                per_row[label].append((at_256.style, at_256.content, at_live.style, at_live.content))
                pictures.append(Image.fromarray(out))
            sheet.append(pictures)
    means = {label: tuple(statistics.fmean(v[i] for v in vals) for i in range(4)) for label, vals in per_row.items()}
    return means, sheet


def measure_add_style(plan: AddStylePlan) -> AddStyleResult:
    original = plan.painting.stem
    with tempfile.TemporaryDirectory(prefix="livestyle-add-style-") as tmp:
        thumbs = Path(tmp) / "thumbnails"  # the painting's own thumbnail hidden: no head start from its row
        if (plan.models_dir / "thumbnails").is_dir():
            shutil.copytree(plan.models_dir / "thumbnails", thumbs)
        thumbs.mkdir(exist_ok=True)
        for own in thumbs.glob(f"{original}.*"):
            own.unlink()
        upload = Path(tmp) / f"{original}{ADDED_SUFFIX}{plan.painting.suffix}"
        shutil.copyfile(plan.painting, upload)
        env: dict[str, str | None] = {
            "LIVESTYLE_STYLES_DIR": str(Path(tmp) / "store"),
            "LIVESTYLE_STYLES_PHOTOS": str(plan.content_dir),
            "LIVESTYLE_THUMBNAILS_DIR": str(thumbs),
            "LIVESTYLE_STYLES_MAX_MINUTES": str(max(60, plan.minutes)),
        }
        with loopback_host_addresses(), server(plan.models_dir, 2, **env) as (url, _):
            run = asyncio.run(_learn_while_streaming(url, plan, upload))
            start = str(run["from"])  # empty: no thumbnails to choose from, it started at the styles' mean
            rows = {
                f"{original} (bundled, full training)": original,
                f"{upload.stem} after {plan.minutes:g} min": upload.stem,
            }
            if start:
                rows[f"{upload.stem} at step 0 (from {start})"] = start
            scores, sheet = _score(url, plan, rows)
        starter = None
        if plan.starter:  # the same upload and budget, no photo folder: what a newcomer's server learns on
            env |= {
                "LIVESTYLE_STYLES_DIR": str(Path(tmp) / "starter-store"),
                "LIVESTYLE_STYLES_PHOTOS": None,
                "LIVESTYLE_DATA": None,
            }
            with loopback_host_addresses(), server(plan.models_dir, 2, **env) as (url, _):
                again = asyncio.run(_learn_while_streaming(url, plan, upload))
                label = f"{upload.stem} after {plan.minutes:g} min on the starter set"
                more, _ = _score(url, plan, {label: upload.stem})
            scores |= more
            starter = (label, int(again["steps"]))
    images.save_png(images.grid(sheet, cell=192), plan.sheet)
    return AddStyleResult(
        steps=int(run["steps"]),
        seconds=float(run["seconds"]),
        preview_seconds=float(run["preview"]),
        started_from=start or "the styles' mean",
        fps_before=float(run["before"]),
        fps_during=float(run["during"]),
        scores=scores,  # type: ignore[arg-type]
        starter=starter,
    )


def _add_style_table_frame(plan: AddStylePlan, result: AddStyleResult) -> Table:
    """The table's title, columns, set-up and goal."""
    return Table(
        title="8. Your own painting, through the API, while a stream runs",
        header=[
            "style row",
            "style 256 px",
            "content 256 px",
            "style 640x480",
            "content 640x480",
            "style / bundled (256 px, 640x480)",
        ],
        setup=(
            f"`POST /api/styles` on a real `livestyle-serve` ({plan.model}): {plan.painting.name} uploaded again "
            f"as a new style (its own thumbnail hidden, so it starts from the nearest other painting: "
            f"{result.started_from}), learned by the server's niced worker process (1 torch thread) for "
            f"{plan.minutes:g} min: {result.steps} steps, usable {result.seconds / 60:.1f} min after the upload "
            f"(export and swap included), first preview after {result.preview_seconds:.0f} s. Meanwhile one "
            f"aiortc peer streamed 640x480 at 15 fps on the same 2 cores. Scored through `/api/stylize` on "
            f"{len(plan.photos)} held-out photos (QUALITY-METRIC.md at 256 px, and the live-size loss at "
            f"640x480). Picture: {plan.sheet.name} (photo, bundled, added, start)."
            + (
                f" The starter set row: the same upload and budget on a server given no photo folder (13 public-"
                f"domain / CC0 photos from scikit-image): {result.starter[1]} steps."
                if result.starter
                else ""
            )
        ),
        goal=(
            f"style loss within {GOAL_FACTOR}x of the same painting's fully trained row after <= {GOAL_MINUTES:g} "
            f"min at both sizes; first preview <= {PREVIEW_GOAL:.0f} s; the stream keeps >= {FPS_GOAL:.0%} of "
            "its frame rate while learning"
            + (
                f"; on the starter set, style loss within {STARTER_GOAL}x of the photo folder's at both sizes."
                if result.starter
                else "."
            )
        ),
    )


def add_style_table(plan: AddStylePlan, result: AddStyleResult) -> Table:
    table = _add_style_table_frame(plan, result)
    labels = list(result.scores)
    bundled = result.scores[labels[0]]
    for label in labels:
        s256, c256, slive, clive = result.scores[label]
        table.rows.append(
            [
                label,
                fmt(s256),
                fmt(c256),
                fmt(slive),
                fmt(clive),
                f"{s256 / bundled[0]:.2f}x, {slive / bundled[2]:.2f}x",
            ]
        )
    added = result.scores[labels[1]]
    ratios = (added[0] / bundled[0], added[2] / bundled[2])
    within = plan.minutes <= GOAL_MINUTES and max(ratios) <= GOAL_FACTOR
    table.verdicts.append(
        f"after {plan.minutes:g} min the added row's style loss is {ratios[0]:.2f}x (256 px) and "
        f"{ratios[1]:.2f}x (640x480) the fully trained one: {'meets' if within else 'MISSES'} "
        f"the goal (<= {GOAL_FACTOR}x in <= {GOAL_MINUTES:g} min)."
    )
    table.verdicts.append(
        f"first preview after {result.preview_seconds:.0f} s: "
        f"{'meets' if result.preview_seconds <= PREVIEW_GOAL else 'MISSES'} the goal."
    )
    if result.starter:
        ours = result.scores[result.starter[0]]
        near = (ours[0] / added[0], ours[2] / added[2])
        table.verdicts.append(
            f"on the starter set the added row's style loss is {near[0]:.2f}x (256 px) and {near[1]:.2f}x (640x480) "
            f"the photo folder's, content {ours[1] / added[1]:.2f}x and {ours[3] / added[3]:.2f}x: "
            f"{'meets' if max(near) <= STARTER_GOAL else 'MISSES'} the goal (<= {STARTER_GOAL}x)."
        )
    kept = result.fps_during / result.fps_before if result.fps_before else float("nan")
    table.verdicts.append(
        f"the live stream: {result.fps_before:.1f} fps before, {result.fps_during:.1f} fps while "
        f"learning ({kept:.0%}): {'meets' if kept >= FPS_GOAL else 'MISSES'} the goal."
    )
    return table
