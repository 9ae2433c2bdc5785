"""Design study, second half: each decoder candidate trained briefly, then its grid score and live-size loss.

    python -m training.bench.design_train --content ../shared/data/photos --styles ../shared/data/styles \\
        --init-from models/checkpoints/realtime.pt --minutes 6 --out docs/realtime-design-train.md

Every candidate starts from the same checkpoint (every tensor that fits: the encoder, the residual blocks and
the per-style norms; a new output layer starts fresh) and trains the same number of minutes on the same
objective with photos and paintings at the live frame's scale (480 px short side, 256 px crops). Then each
stylizes held-out photos (bsds_val_*, never trained on) as 640x480 frames in every painting style, scored
by the grid score and the live-size style/content loss (QUALITY-METRIC.md).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from service.contract import frame_to_image, image_to_frame
from training import images
from training.bench.design import MESHED
from training.checkpoint import build_from_checkpoint, load_checkpoint
from training.grid import geometric_mean, grid_score
from training.networks import NetConfig, StyleNet
from training.quality import LiveScorer, live_frame
from training.train import TrainConfig, Trainer

log = logging.getLogger(__name__)
REALTIME_TODAY = MESHED  # the design bundled until 2026-12-02
CANDIDATES: dict[str, dict[str, object]] = {
    "nearest decoder, transposed 2x2 out (bundled until 2026-12-02)": REALTIME_TODAY,
    "bilinear decoder, transposed 2x2 out": REALTIME_TODAY | {"upsample": "bilinear"},
    "bilinear decoder, 3x3 conv + pixel shuffle (ICNR) out": REALTIME_TODAY
    | {"upsample": "bilinear", "output": "conv"},
    "bilinear decoder, RGB at half size + bilinear 2x out": REALTIME_TODAY
    | {"upsample": "bilinear", "output": "bilinear"},
    "bilinear decoder, RGB at half size + bilinear 2x + full-size 3x3 out": REALTIME_TODAY
    | {"upsample": "bilinear", "output": "upsampled"},
}


@dataclass(frozen=True)
class Outcome:
    grid: float
    grid_worst: float
    style: float
    content: float
    steps: int


@torch.no_grad()
def evaluate(
    net: StyleNet, styles: list[str], paintings: dict[str, Path], photos: list[Path], scorer: LiveScorer
) -> tuple[float, float, float, float]:
    """Grid score (geometric mean, worst) and mean live-size style and content loss over photos x paintings."""
    net.eval()
    grids, style, content = [], [], []
    for photo in photos:
        frame = live_frame(photo)
        x = torch.from_numpy(image_to_frame(frame))
        for name, painting in paintings.items():
            w = torch.nn.functional.one_hot(torch.tensor([styles.index(name)]), len(styles)).float()
            out = frame_to_image(net.stylize_any_size(x, w).numpy())
            grids.append(grid_score(out))
            s = scorer.score(out, frame, painting)
            style.append(s.style)
            content.append(s.content)
    return geometric_mean(grids), max(grids), float(np.mean(style)), float(np.mean(content))


def candidate_config(
    args: argparse.Namespace, paintings: dict[str, Path], dreams: tuple[str, ...], settings: dict[str, Any], out: Path
) -> TrainConfig:
    """The same short run for every candidate: the given minutes from the same checkpoint, live-size crops."""
    return TrainConfig(
        content_dir=args.content,
        style_images=tuple(paintings.values()),
        out_dir=out,
        dream_layers=dreams,
        dream_weights=tuple(float(w) for w in settings.get("dream_weights", (3e5,))),
        steps=100_000,
        batch_size=4,
        crop_size=256,
        lr=1e-3,
        style_size=480,
        scene_size=480,
        exclude=("bsds_val_*",),
        checkpoint_every=10_000,
        preview_every=10_000,
        threads=2,
        init_from=args.init_from,
        minutes=args.minutes,
        precision="bf16",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--content", type=Path, required=True, help="training photos (bsds_val_* held out)")
    parser.add_argument("--styles", type=Path, required=True, help="folder of the paintings")
    parser.add_argument("--init-from", type=Path, required=True, help="checkpoint every candidate starts from")
    parser.add_argument("--minutes", type=float, default=6.0, help="training minutes per candidate")
    parser.add_argument("--photos", type=int, default=4, help="held-out photos scored per candidate")
    parser.add_argument("--runs", type=Path, default=Path("runs/design"), help="where the candidates train")
    parser.add_argument("--out", type=Path, help="write the table as markdown here")
    parser.add_argument("--only", type=int, nargs="*", help="candidate numbers (0-based) to run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    ckpt = load_checkpoint(args.init_from)
    source, styles = build_from_checkpoint(ckpt)
    settings = ckpt.get("train_config", {})
    dreams = tuple(settings.get("dream_layers", ()))
    paintings = {s: args.styles / f"{s}.jpg" for s in styles if not s.startswith("dream_")}
    held_out = images.list_images(args.content)
    photos = [p for p in held_out if p.match("bsds_val_*")][: args.photos]
    scorer = LiveScorer()
    rows = []
    chosen = [list(CANDIDATES)[i] for i in args.only] if args.only else list(CANDIDATES)
    for index, name in enumerate(chosen):
        design = NetConfig(num_styles=len(styles), **CANDIDATES[name])  # type: ignore[arg-type]
        cfg = candidate_config(args, paintings, dreams, settings, args.runs / f"c{index}")
        trainer = Trainer(cfg, design=design)
        trainer.run()
        grid, worst, style, content = evaluate(trainer.net, styles, paintings, photos, scorer)
        rows.append((name, Outcome(grid, worst, style, content, trainer.step)))
        log.info(
            "%s: grid %.2f (worst %.1f), style %.3g, content %.3g after %d steps",
            name,
            grid,
            worst,
            style,
            content,
            trainer.step,
        )
    lines = ["| design | steps | grid score (worst) | live-size style | live-size content |", "|---|---|---|---|---|"]
    for name, o in rows:
        lines.append(f"| {name} | {o.steps} | {o.grid:.2f} ({o.grid_worst:.1f}) | {o.style:.3g} | {o.content:.3g} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(table + "\n")
        tmp.replace(args.out)


if __name__ == "__main__":
    main()
