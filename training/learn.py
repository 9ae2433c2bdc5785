"""Learning a picture as one more style of a shipped model, in the service's worker process.

``python -m training.learn JOB_DIR`` reads ``JOB_DIR/request.json`` (written by service/learned/store.py), and for each
model it names: extends that model's checkpoint by one style, starts the new conditional-norm rows from the
bundled style whose VGG19 Gram statistics are nearest the picture's (so the first preview already paints), trains
only those rows (every convolution and every other row stays bit-identical) for the budget, and exports the
result to ``JOB_DIR/out/<model>/`` under the ONNX contract. ``JOB_DIR/progress.json`` is rewritten atomically at
every step (model, step, losses, seconds left) and ``JOB_DIR/preview-<model>.png`` on a schedule. The service
owns everything else: the queue, the swap, the store. A removal (``"remove": [...]`` in the request) drops rows
instead and exports the same way.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from training import images
from training.checkpoint import build_from_checkpoint, load_checkpoint, save_checkpoint
from training.export import export_checkpoint
from training.features import STYLE_TAPS, VGGFeatures
from training.loop import run_steps
from training.losses import gram
from training.networks import NetConfig, StyleNet
from training.train import LOG_COLUMNS, TrainConfig, Trainer

log = logging.getLogger("livestyle.learn")
PREVIEW_SECONDS = 20.0  # a new preview at most this often (and at step 0, and at the end)
NEAREST_SIDE = 256  # the side pictures are compared at when choosing the starting rows


@dataclass(frozen=True)
class Target:
    """One model to learn the style on: its manifest name and the checkpoint it extends."""

    model: str
    tier: str
    checkpoint: Path


@dataclass(frozen=True)
class LearnRequest:
    name: str  # the new style's name ("" for a removal)
    image: Path | None  # the picture, already checked by the service
    targets: tuple[Target, ...]
    content_dir: Path  # photos the rows learn on
    minutes: float  # per model (0: no time limit)
    steps: int  # per model
    threads: int
    style_pictures: dict[str, Path]  # existing style -> its thumbnail, to choose the starting rows
    preview_photo: Path | None
    measure_on: tuple[Path, ...]  # held-out photos for the dream gains the export records
    remove: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()  # content photos not to learn on (the held-out ones)
    batch_size: int = 4
    crop_size: int = 128  # small crops: many more steps in a short budget, at a small cost in look

    @classmethod
    def read(cls, path: Path) -> LearnRequest:
        data = json.loads(path.read_text())
        return cls(
            name=str(data.get("name", "")),
            image=Path(data["image"]) if data.get("image") else None,
            targets=tuple(Target(str(t["model"]), str(t["tier"]), Path(t["checkpoint"])) for t in data["targets"]),
            content_dir=Path(data["content_dir"]),
            minutes=float(data.get("minutes", 0)),
            steps=int(data.get("steps", 1_000_000)),
            threads=int(data.get("threads", 1)),
            style_pictures={str(k): Path(v) for k, v in data.get("style_pictures", {}).items()},
            preview_photo=Path(data["preview_photo"]) if data.get("preview_photo") else None,
            measure_on=tuple(Path(p) for p in data.get("measure_on", ())),
            remove=tuple(str(s) for s in data.get("remove", ())),
            exclude=tuple(str(s) for s in data.get("exclude", ())),
            batch_size=int(data.get("batch_size", 4)),
            crop_size=int(data.get("crop_size", 128)),
        )


class Progress:
    """``progress.json``, rewritten whole (temporary name, then rename) so a reader never sees half of it."""

    def __init__(self, job: Path, request: LearnRequest) -> None:
        self.path = job / "progress.json"
        self.state: dict[str, Any] = {
            "models": [t.model for t in request.targets],
            "done": [],
            "model": None,
            "step": 0,
            "steps": request.steps,
            "losses": {},
            "seconds_left": None,
            "previews": {},
        }

    def update(self, **changes: Any) -> None:
        self.state.update(changes)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.state))
        tmp.replace(self.path)


def nearest_style(vgg: VGGFeatures, picture: Path, candidates: dict[str, Path]) -> str | None:
    """The candidate whose Gram matrices (relu1_1..relu4_1, each scaled by its own norm) are nearest."""
    found = {name: path for name, path in candidates.items() if path.is_file()}
    if not found:
        return None
    device = next(vgg.parameters()).device
    with torch.no_grad():

        def grams(path: Path) -> dict[str, torch.Tensor]:
            image = images.load_image(path, short_side=NEAREST_SIDE, square=True).to(device)
            return {k: gram(v) for k, v in vgg(image).items() if k in STYLE_TAPS}

        target = grams(picture)
        distance = {
            name: sum(float((g - target[k]).norm() / target[k].norm()) for k, g in grams(path).items())
            for name, path in found.items()
        }
    return min(distance, key=lambda name: distance[name])


def start_rows_from(net: StyleNet, row: int, source: int) -> None:
    """Copy style ``source``'s gamma/beta rows into ``row`` (the new style starts as the nearest one)."""
    with torch.no_grad():
        for norm in net.norms():
            norm.gamma[row].copy_(norm.gamma[source])
            norm.beta[row].copy_(norm.beta[source])


def without_styles(net: StyleNet, styles: list[str], drop: tuple[str, ...]) -> tuple[StyleNet, list[str]]:
    """A copy of ``net`` without the rows of ``drop``; every other tensor unchanged."""
    keep = [i for i, s in enumerate(styles) if s not in drop]
    smaller = StyleNet(NetConfig.from_json(net.config.to_json() | {"num_styles": len(keep)}))
    state = net.state_dict()
    smaller.load_state_dict({k: v[keep] if k.endswith((".gamma", ".beta")) else v for k, v in state.items()})
    return smaller, [styles[i] for i in keep]


def learn_config(request: LearnRequest, target: Target, run: Path) -> TrainConfig:
    """The training run that learns the new style's rows on one model (its held-out photo as the preview)."""
    assert request.image is not None
    previews = (request.preview_photo,) if request.preview_photo and request.preview_photo.is_file() else ()
    return TrainConfig(
        content_dir=request.content_dir,
        style_images=(request.image,),
        out_dir=run,
        tier="added",
        steps=request.steps,
        minutes=request.minutes,
        batch_size=request.batch_size,
        crop_size=request.crop_size,
        resume=target.checkpoint,
        new_styles_only=True,
        exclude=request.exclude,
        checkpoint_every=1,
        preview_every=1_000_000,
        threads=request.threads,
        preview_images=previews,
        device="cuda" if torch.cuda.is_available() else "cpu",  # seconds on a GPU, minutes on a CPU
    )


def learn_one(job: Path, request: LearnRequest, target: Target, progress: Progress) -> Path:
    """Train the new style's rows on one model; returns the checkpoint written."""
    assert request.image is not None
    run = job / "run" / target.model
    cfg = learn_config(request, target, run)
    previews = cfg.preview_images
    trainer = Trainer(cfg)
    start_step = trainer.step
    first = nearest_style(
        trainer.vgg, request.image, {s: p for s, p in request.style_pictures.items() if s in trainer.styles}
    )
    if first is not None:
        start_rows_from(trainer.net, len(trainer.styles) - 1, trainer.styles.index(first))
    preview = job / f"preview-{target.model}.png"
    started, last_preview = time.time(), 0.0

    def show() -> None:
        nonlocal last_preview
        if previews:
            trainer.preview(preview)
            last_preview = time.time()
            progress.update(previews=progress.state["previews"] | {target.model: preview.name})

    progress.update(model=target.model, step=0, started_from=first, losses={}, seconds_left=60 * request.minutes)
    show()

    def after_step(ema: dict[str, float]) -> None:
        done = trainer.step - start_step
        elapsed = time.time() - started
        left_by_time = 60 * request.minutes - elapsed if request.minutes else math.inf
        left_by_steps = (request.steps - trainer.step) * elapsed / max(done, 1)
        progress.update(
            step=done,
            losses={k: round(v, 6) for k, v in ema.items()},
            seconds_left=round(max(0.0, min(left_by_time, left_by_steps)), 1),
        )
        if time.time() - last_preview >= PREVIEW_SECONDS:
            show()

    metrics = run_steps(
        cfg.loop_plan(LOG_COLUMNS, ("style",), f"learn {request.name} on {target.model}"), trainer, after_step
    )
    show()
    out = run / "checkpoint.pt"
    save_checkpoint(out, trainer.net, trainer.styles, trainer.step, cfg, None, metrics)
    return out


def remove_from(job: Path, request: LearnRequest, target: Target) -> Path:
    ckpt = load_checkpoint(target.checkpoint)
    net, styles = build_from_checkpoint(ckpt)
    missing = [s for s in request.remove if s not in styles]
    if missing:
        raise ValueError(f"{target.checkpoint}: no styles {missing} to remove")
    smaller, kept = without_styles(net, styles, request.remove)
    out = job / "run" / target.model / "checkpoint.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    body = {**ckpt, "net_config": smaller.config.to_json(), "styles": kept, "state_dict": smaller.state_dict()}
    torch.save(body, out)
    return out


def run_job(job: Path) -> None:
    request = LearnRequest.read(job / "request.json")
    progress = Progress(job, request)
    if request.threads:
        torch.set_num_threads(request.threads)
    for target in request.targets:
        learned = remove_from(job, request, target) if request.remove else learn_one(job, request, target, progress)
        progress.update(model=target.model, exporting=True)
        export_checkpoint(
            learned, job / "out" / target.model, name=target.model, tier=target.tier, measure_on=request.measure_on
        )
        progress.update(done=[*progress.state["done"], target.model], exporting=False)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    if len(args) != 1:
        sys.stderr.write("usage: python -m training.learn JOB_DIR\n")
        raise SystemExit(2)
    try:
        run_job(Path(args[0]))
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"learn: {exc}\n")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
