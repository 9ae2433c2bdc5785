"""Table 8: adding a style to the bundled realtime network in a few minutes (``add-style``, norms only).

The yardstick is the same painting learned the long way: the painting is added again under a new
name, only its conditional-norm rows train for the time budget (every convolution frozen), and both
rows are scored with the quality metric (QUALITY-METRIC.md) on held-out photos, next to the new row's
starting point (the mean of the existing styles' rows). A picture shows the three side by side.
"""

from __future__ import annotations

import logging
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from training import images
from training.bench.report import Table, fmt
from training.checkpoint import build_from_checkpoint, extend_styles, load_checkpoint
from training.features import CONTENT_TAP, STYLE_TAPS, load_vgg
from training.losses import gram
from training.quality import metric_content, metric_style, score_against
from training.train import TrainConfig, Trainer

log = logging.getLogger(__name__)
GOAL_MINUTES, GOAL_FACTOR = 10.0, 1.5
ADDED_SUFFIX = "_added"


@dataclass(frozen=True)
class AddStylePlan:
    checkpoint: Path  # the bundled network's checkpoint (models/checkpoints/realtime.pt)
    painting: Path  # a painting the checkpoint already has, added again under a new name
    content_dir: Path
    photos: tuple[Path, ...]  # held out: scored and shown
    sheet: Path
    minutes: float = GOAL_MINUTES
    batch_size: int = 4
    crop_size: int = 128
    size: int = 256  # the metric's size; smaller only in tests


@dataclass(frozen=True)
class AddStyleResult:
    steps: int
    seconds: float
    scores: dict[str, tuple[float, float]]  # row label -> mean (style loss, content loss)


def measure_add_style(plan: AddStylePlan) -> AddStyleResult:
    bundled_net, styles = build_from_checkpoint(load_checkpoint(plan.checkpoint))
    original = plan.painting.stem
    if original not in styles:
        raise ValueError(f"{plan.checkpoint} has no style {original!r} to compare against")
    with tempfile.TemporaryDirectory(prefix="livestyle-add-style-") as tmp:
        added = Path(tmp) / f"{original}{ADDED_SUFFIX}{plan.painting.suffix}"
        shutil.copyfile(plan.painting, added)
        cfg = TrainConfig(content_dir=plan.content_dir, style_images=(added,), out_dir=Path(tmp) / "run",
                          tier="added", steps=1_000_000, minutes=plan.minutes, batch_size=plan.batch_size,
                          crop_size=plan.crop_size, exclude=("bsds_val_*",), resume=plan.checkpoint,
                          new_styles_only=True, checkpoint_every=1_000_000, preview_every=1_000_000)
        start = time.perf_counter()
        trainer = Trainer(cfg)
        trainer.run()
        seconds = time.perf_counter() - start  # set-up (style targets, VGG) included: what a user waits
        trained = trainer.net.eval()
    start_net = extend_styles(bundled_net, 1).eval()  # the new row before training: the styles' mean
    n = len(styles) + 1
    rows = {f"{original} (bundled, full training)": (trained, styles.index(original)),
            f"{original}{ADDED_SUFFIX} after {plan.minutes:g} min": (trained, n - 1),
            f"{original}{ADDED_SUFFIX} at step 0 (mean of the styles)": (start_net, n - 1)}
    vgg = load_vgg((*STYLE_TAPS, CONTENT_TAP))
    with torch.no_grad():
        style_grams = {k: gram(v) for k, v in vgg(metric_style(plan.painting)).items()}
        per_row: dict[str, list[tuple[float, float]]] = {label: [] for label in rows}
        sheet_rows = []
        for photo in plan.photos:
            content = metric_content(photo)
            if plan.size != content.shape[-1]:
                content = torch.nn.functional.interpolate(content, size=(plan.size, plan.size), mode="area")
            content_feats = vgg(content)[CONTENT_TAP]
            row_pictures = [images.to_image(content)]
            for label, (net, index) in rows.items():
                weights = torch.nn.functional.one_hot(torch.tensor([index]), n).float()
                output = net.stylize_any_size(content, weights)
                scored = score_against(vgg, output, style_grams, content_feats)
                per_row[label].append((scored.style, scored.content))
                row_pictures.append(images.to_image(output))
            sheet_rows.append(row_pictures)
    images.save_png(images.grid(sheet_rows, cell=192), plan.sheet)
    scores = {label: (statistics.fmean(v[0] for v in vals), statistics.fmean(v[1] for v in vals))
              for label, vals in per_row.items()}
    return AddStyleResult(steps=trainer.step, seconds=seconds, scores=scores)


def add_style_table(plan: AddStylePlan, result: AddStyleResult) -> Table:
    table = Table(
        title="8. Adding a style in minutes",
        header=["style row", "style loss", "content loss", "style loss / bundled"],
        setup=(f"`livestyle-train add-style` on {plan.checkpoint.name}: {plan.painting.name} added again as a new "
               f"style, only its norm rows trained (convolutions frozen) for {plan.minutes:g} min of wall time, batch "
               f"{plan.batch_size} of {plan.crop_size} px crops, torch threads: all cores; {result.steps} steps in "
               f"{result.seconds / 60:.1f} min including set-up. Scored on {len(plan.photos)} held-out photos "
               f"(QUALITY-METRIC.md, 256 px). Picture: {plan.sheet.name} (photo, bundled, added, step 0)."),
        goal=(f"one new style at a quality you would show in <= {GOAL_MINUTES:g} minutes on this CPU: style loss "
              f"within {GOAL_FACTOR}x of the same painting's fully trained row."),
    )
    labels = list(result.scores)
    bundled_style = result.scores[labels[0]][0]
    for label in labels:
        style, content = result.scores[label]
        table.rows.append([label, fmt(style), fmt(content), f"{style / bundled_style:.2f}x"])
    ratio = result.scores[labels[1]][0] / bundled_style
    within = plan.minutes <= GOAL_MINUTES and ratio <= GOAL_FACTOR
    table.verdicts.append(
        f"after {plan.minutes:g} min the added row's style loss is {ratio:.2f}x the fully trained one: "
        f"{'meets' if within else 'MISSES'} the goal (<= {GOAL_FACTOR}x in <= {GOAL_MINUTES:g} min).")
    return table
