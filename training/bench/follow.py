"""Do the strokes follow the camera? A network's output for a moved frame against its output moved the same.

A feed-forward network whose encoder strides down by its size multiple (8 for the realtime tier) is exactly
equivariant to moves by whole multiples of it, and only as far as its training and design allow to anything in
between. A camera never moves by whole lattice steps: where the strokes cannot slide with the picture they
are repainted, and that is flicker the stabilizer can only average away. Per model and painting, held-out
photos at the live size (640x480) are moved by sub-lattice steps (bilinear, reflected at the border) and
painted; the mean absolute difference to the first painting moved the same, away from the border, is given in
grey levels (0-255), for each move and as the mean over the moves smaller than the lattice.

    python -m training.bench.follow --models-dir models --models-dir runs/candidate [--photos 4]

compares several sets of models in one run (the first is the baseline of the ratio column).
"""

from __future__ import annotations

import argparse
import logging
import statistics
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from service.engine import Engine
from service.settings import Settings
from training.bench.report import Table
from training.quality import live_frame

MOVES: tuple[tuple[float, float], ...] = ((0.5, 0.0), (1.0, 0.0), (2.0, 1.0), (3.0, 0.0), (4.0, 4.0), (8.0, 0.0))
LATTICE = 8  # the realtime tier's size multiple: a move by it is the control (~0 for any such network)
MARGIN = 24  # px left out at each border: reflection there is not a camera's move

Stylize = Callable[[np.ndarray], np.ndarray]


def moved(rgb: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``rgb`` shifted right by ``dx`` and down by ``dy`` px (bilinear, reflected at the border)."""
    matrix = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]], dtype=np.float32)
    return cv2.warpAffine(
        rgb, matrix, (rgb.shape[1], rgb.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )


def follow_error(stylize: Stylize, frame: np.ndarray, move: tuple[float, float], margin: int = MARGIN) -> float:
    """Mean |stylize(moved(frame)) - moved(stylize(frame))| in grey levels, ``margin`` px inside the border."""
    if min(frame.shape[:2]) <= 2 * margin:
        raise ValueError(f"a {frame.shape[1]}x{frame.shape[0]} frame leaves nothing inside a {margin} px margin")
    first = moved(stylize(frame), *move).astype(np.float32)
    second = stylize(moved(frame, *move)).astype(np.float32)
    inside = (slice(margin, -margin), slice(margin, -margin))
    return float(np.abs(second[inside] - first[inside]).mean())


def follow_errors(stylize: Stylize, frames: list[np.ndarray], moves: tuple[tuple[float, float], ...]) -> list[float]:
    """Per move, the mean over ``frames`` of ``follow_error``."""
    return [statistics.fmean(follow_error(stylize, f, m) for f in frames) for m in moves]


def sub_lattice(errors: list[float], moves: tuple[tuple[float, float], ...]) -> float:
    """The mean error over the moves that are not whole lattice steps."""
    kept = [e for e, (dx, dy) in zip(errors, moves, strict=True) if dx % LATTICE or dy % LATTICE]
    return statistics.fmean(kept)


def follow_table(
    rows: list[tuple[str, str, list[float]]], moves: tuple[tuple[float, float], ...], photos: int
) -> Table:
    """``rows``: (models, painting, per-move errors); the first models' rows are the ratio's baseline."""
    table = Table(
        title="Strokes that follow the camera: painting a moved frame against moving the painting",
        header=["models", "painting", *(f"move {dx:g},{dy:g} px" for dx, dy in moves), "below the lattice", "/ first"],
        setup=(
            f"{photos} held-out photos (bsds_val_*) at 640x480, each moved by (dx, dy) px (bilinear, reflected); "
            f"mean |f(moved frame) - moved f(frame)| in grey levels, {MARGIN} px inside the border; 'below the "
            f"lattice': mean over the moves that are not multiples of {LATTICE} px."
        ),
    )
    baseline = {painting: sub_lattice(e, moves) for models, painting, e in rows if models == rows[0][0]}
    for models, painting, errors in rows:
        mean = sub_lattice(errors, moves)
        ratio = f"{mean / baseline[painting]:.2f}" if painting in baseline else "-"
        table.rows.append([models, painting, *(f"{e:.2f}" for e in errors), f"{mean:.2f}", ratio])
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.bench.follow",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--models-dir", type=Path, action="append", help="a models folder (repeat to compare)")
    parser.add_argument("--model", default="realtime")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--photos", type=int, default=4, help="how many held-out photos (bsds_val_*)")
    parser.add_argument("--styles", default="great_wave,the_scream")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    photos = sorted((args.data / "photos").glob("bsds_val_*.jpg"))[: args.photos]
    if not photos:
        parser.error(f"no held-out photos (bsds_val_*.jpg) under {args.data / 'photos'}")
    frames = [live_frame(p) for p in photos]
    rows = []
    for folder in args.models_dir or [Path("models")]:
        engine = Engine.load(folder, Settings.model_validate({}).runtime_options())
        loaded = engine.model(args.model)
        for style in args.styles.split(","):
            if style not in loaded.styles:
                parser.error(f"{folder}: model {args.model} has no style {style!r}; it has {list(loaded.styles)}")
            weights = np.zeros((1, len(loaded.styles)), np.float32)
            weights[0, loaded.styles.index(style)] = 1.0
            errors = follow_errors(partial(engine.stylize, weights=weights, model=args.model), frames, MOVES)
            rows.append((f"{folder} ({loaded.entry.sha256[:12]})", style, errors))
    print(follow_table(rows, MOVES, len(frames)).markdown(""))


if __name__ == "__main__":
    main()
