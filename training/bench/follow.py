"""Do the strokes follow the camera? A network's output for a moved frame against its output moved the same.

A feed-forward network whose encoder strides down by its size multiple (8 for the realtime tier) is exactly
equivariant to moves by whole multiples of it, and only as far as its training and design allow to anything in
between. A camera never moves by whole lattice steps: where the strokes cannot slide with the picture they
are repainted, and that is flicker the stabilizer can only average away. Per model and painting, held-out
photos at the live size (640x480) are moved by sub-lattice steps (bilinear, reflected at the border) and
painted; the mean absolute difference to the first painting moved the same, away from the border, is given in
grey levels (0-255), for each move and as the mean over the moves smaller than the lattice.

A rigid move is not a real camera's: its flow bends (parallax, subjects that move). ``--clip`` adds the same
question on real footage: each frame pair's flow (the metric's DIS, where forward and backward agree) moves the
earlier frame onto the later one, and the painting of that moved frame is compared with the earlier painting
moved along the same flow. What the flow cannot explain (new content, light, noise) is left out, so this is the
part of a model's flicker that is its own failure to follow the camera.

    python -m training.bench.follow --models-dir models --models-dir runs/candidate [--photos 4] \
        [--clip ../shared/data/video/bikes.mp4 --frames 24]

compares several sets of models in one run (the first is the baseline of the ratio column). Steadiness bought
by painting less is no gain, so each row also gives the other side of the trade: the live-size style loss
(QUALITY-METRIC.md, the painting at 480 px) of the paintings of the held-out photos and, with ``--clip``, of every
6th frame of the clip (its frames are the upscaled, softer pictures a real camera gives, where some designs
paint less than on sharp photos).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from service.blend import weights_vector
from service.engine import Engine
from service.flow import FlowEstimator, warp
from service.settings import Settings
from training.bench.data import paintings_for
from training.bench.real_motion import STILL
from training.bench.report import Table, fmt
from training.bench.steady import STYLE_EVERY, handheld_clip
from training.quality import LiveScorer, live_frame

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


def flow_follow_error(stylize: Stylize, frames: list[np.ndarray], flow: FlowEstimator | None = None) -> float:
    """Mean over consecutive pairs of |stylize(earlier moved along the flow) - stylize(earlier) moved along it|
    in grey levels, where the flow is trusted (every other pair: each frame painted once or twice)."""
    if len(frames) < 2:
        raise ValueError(f"following a real flow needs at least 2 frames, got {len(frames)}")
    flow = flow or FlowEstimator("medium")
    errors = []
    for earlier, later in zip(frames[:-1:2], frames[1::2], strict=False):
        pair = flow.pair(earlier, later)
        if not pair.valid.any():
            continue
        first = warp(stylize(earlier), pair.backward).astype(np.float32)
        second = stylize(warp(earlier, pair.backward)).astype(np.float32)
        errors.append(float(np.abs(second - first)[pair.valid].mean()))
    if not errors:
        raise ValueError("no frame pair had a trusted flow")
    return statistics.fmean(errors)


def live_clip(source: Path, frames: int, folder: Path) -> list[np.ndarray]:
    """The first ``frames`` frames of ``source`` at the live size (covering it, as table 15 paints), RGB."""
    clip = folder / "live.avi"
    handheld_clip(source, clip, frames, STILL)
    capture = cv2.VideoCapture(str(clip))
    taken: list[np.ndarray] = []
    try:
        while len(taken) < frames:
            ok, frame = capture.read()
            if not ok:
                break
            taken.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    return taken


def sub_lattice(errors: list[float], moves: tuple[tuple[float, float], ...]) -> float:
    """The mean error over the moves that are not whole lattice steps."""
    kept = [e for e, (dx, dy) in zip(errors, moves, strict=True) if dx % LATTICE or dy % LATTICE]
    return statistics.fmean(kept)


@dataclass(frozen=True)
class FollowRow:
    models: str
    painting: str
    errors: list[float]  # per move of the table's moves
    clip: float | None = None  # flow_follow_error on the clip, when one was given
    style: float | None = None  # mean live-size style loss of the photos' paintings
    clip_style: float | None = None  # the same over every STYLE_EVERY-th frame of the clip


def follow_table(rows: list[FollowRow], moves: tuple[tuple[float, float], ...], photos: int, clip: str = "") -> Table:
    """One row per models and painting; the first models' rows are the ratios' baseline. Style columns appear
    when the rows carry style losses."""
    header = ["models", "painting", *(f"move {dx:g},{dy:g} px" for dx, dy in moves), "below the lattice", "/ first"]
    setup = (
        f"{photos} held-out photos (bsds_val_*) at 640x480, each moved by (dx, dy) px (bilinear, reflected); "
        f"mean |f(moved frame) - moved f(frame)| in grey levels, {MARGIN} px inside the border; 'below the "
        f"lattice': mean over the moves that are not multiples of {LATTICE} px."
    )
    styled = any(r.style is not None for r in rows)
    if clip:
        header += [f"{clip}: along its flow", "/ first"]
        setup += f" '{clip}: along its flow': the same along each frame pair's trusted flow (flow_follow_error)."
    if styled:
        header += ["live-size style, photos", "/ first"] + ([f"{clip}: live-size style", "/ first"] if clip else [])
        setup += " Live-size style: QUALITY-METRIC.md's, painting at 480 px, of the photos' paintings" + (
            f" and of every {STYLE_EVERY}th frame of {clip}." if clip else "."
        )
    table = Table(title="Strokes that follow the camera", header=header, setup=setup)
    first = {r.painting: r for r in rows if r.models == rows[0].models}
    for row in rows:
        base = first.get(row.painting)
        mean = sub_lattice(row.errors, moves)
        cells = [row.models, row.painting, *(f"{e:.2f}" for e in row.errors), f"{mean:.2f}"]
        cells.append(_ratio(mean, sub_lattice(base.errors, moves) if base else None))
        two_places: Callable[[float], str] = "{:.2f}".format
        pairs = [(row.clip, base.clip if base else None, two_places)] if clip else []
        if styled:
            pairs.append((row.style, base.style if base else None, fmt))
            pairs += [(row.clip_style, base.clip_style if base else None, fmt)] if clip else []
        for value, baseline, shown in pairs:
            cells += ["-" if value is None else shown(value), _ratio(value, baseline)]
        table.rows.append(cells)
    return table


def _ratio(value: float | None, baseline: float | None) -> str:
    return "-" if value is None or not baseline else f"{value / baseline:.2f}"


def live_style(stylize: Stylize, frames: list[np.ndarray], painting: Path, scorer: LiveScorer) -> float:
    """Mean live-size style loss (QUALITY-METRIC.md) of ``stylize``'s paintings of ``frames`` (640x480 RGB)."""
    return statistics.fmean(scorer.score(stylize(f), f, painting).style for f in frames)


def measure_models(
    folders: list[Path],
    model: str,
    styles: list[str],
    frames: list[np.ndarray],
    clip: list[np.ndarray],
    paintings: dict[str, Path] | None,
) -> list[FollowRow]:
    """A row per models folder and painting; style losses only when ``paintings`` are given."""
    scorer = LiveScorer() if paintings else None
    rows = []
    for folder in folders:
        engine = Engine.load(folder, Settings.model_validate({}).runtime_options())
        loaded = engine.model(model)
        for style in styles:
            if style not in loaded.styles:
                raise ValueError(f"{folder}: model {model} has no style {style!r}; it has {list(loaded.styles)}")
            stylize = partial(engine.stylize, weights=weights_vector(loaded.styles, {style: 1.0}), model=model)
            row = FollowRow(
                f"{folder} ({loaded.entry.sha256[:12]})",
                style,
                follow_errors(stylize, frames, MOVES),
                flow_follow_error(stylize, clip) if clip else None,
            )
            if paintings and scorer is not None:
                sampled = clip[::STYLE_EVERY]
                row = replace(
                    row,
                    style=live_style(stylize, frames, paintings[style], scorer),
                    clip_style=live_style(stylize, sampled, paintings[style], scorer) if sampled else None,
                )
            rows.append(row)
    return rows


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
    parser.add_argument("--clip", type=Path, help="a real moving clip to follow along its own flow as well")
    parser.add_argument("--frames", type=int, default=24, help="the clip's first frames taken (--clip)")
    parser.add_argument("--no-style", action="store_true", help="leave out the live-size style columns (faster)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    photos = sorted((args.data / "photos").glob("bsds_val_*.jpg"))[: args.photos]
    if not photos:
        parser.error(f"no held-out photos (bsds_val_*.jpg) under {args.data / 'photos'}")
    if args.clip is not None and not args.clip.is_file():
        parser.error(f"no clip at {args.clip}")
    styles = args.styles.split(",")
    paintings = None if args.no_style else paintings_for(args.data, tuple(styles), 0)
    if paintings is not None and set(paintings) != set(styles):
        parser.error(f"no painting under {args.data / 'styles'} for {sorted(set(styles) - set(paintings))}")
    frames = [live_frame(p) for p in photos]
    with tempfile.TemporaryDirectory(prefix="livestyle-follow-") as tmp:
        clip = live_clip(args.clip, args.frames, Path(tmp)) if args.clip is not None else []
    try:
        rows = measure_models(args.models_dir or [Path("models")], args.model, styles, frames, clip, paintings)
    except ValueError as exc:
        parser.error(str(exc))
    print(follow_table(rows, MOVES, len(frames), args.clip.name if args.clip else "").markdown(""))


if __name__ == "__main__":
    main()
