"""``livestyle-video``: stylize a video file from the command line (in process, or on Ray)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from service import contract
from service.brush import BRUSH_MAX, BRUSH_MIN
from service.dream import LAYERS as DREAM_LAYERS
from service.dream import DreamOptions, DreamParams
from service.engine import Engine
from service.errors import BadRequest, ServiceError
from service.look import LookUpdate, parse_weights_field
from service.settings import Settings
from service.stabilize import StabilizeOptions
from service.video.pipeline import Progress, VideoOptions, process_video
from service.video.schedule import read_schedule

log = logging.getLogger(__name__)


# -- command line ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="livestyle-video", description="Stylize a video file; keeps timing and audio."
    )
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--style", help="blend, e.g. starry_night=0.7,the_scream=0.3 (default: first style)")
    parser.add_argument("--schedule", type=Path, help="keyframed blends over time (JSON or text)")
    parser.add_argument("--model", help="model name from the manifest (default: the realtime one)")
    parser.add_argument("--strength", type=float, default=1.0, help="0 = original, 1 = fully stylized")
    parser.add_argument("--preserve-color", action="store_true")
    parser.add_argument(
        "--brush",
        type=float,
        default=1.0,
        help=f"stroke scale in [{BRUSH_MIN}, {BRUSH_MAX}] (2: strokes twice as large, as sharp)",
    )
    parser.add_argument("--max-size", type=int, help="longer side of the output in pixels")
    parser.add_argument("--stabilize", action="store_true", help="reduce flicker with optical flow")
    parser.add_argument("--stabilize-blend", type=float, default=StabilizeOptions.blend)
    parser.add_argument(
        "--stabilize-detail",
        type=float,
        default=StabilizeOptions.detail_target,
        help="under camera motion, give the strokes back toward this x a fresh frame's detail (0: off)",
    )
    parser.add_argument("--codec", default="libx264", help="any encoder PyAV has (default libx264)")
    parser.add_argument("--container", help="PyAV format name (default: from the output's suffix)")
    parser.add_argument("--workers", type=int, default=1, help="frames stylized at once")
    parser.add_argument("--models-dir", type=Path, help="default: LIVESTYLE_MODELS_DIR or models/")
    parser.add_argument("--engine", choices=("local", "ray"), default="local")
    parser.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    parser.add_argument("--chunks", type=int, help="Ray: number of chunks (default: 2 per CPU)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    dream = parser.add_argument_group("iterative DeepDream (--mode dream; needs the dream extra)")
    dream.add_argument(
        "--mode",
        choices=("style", "dream"),
        default="style",
        help="style: the ONNX network (dream styles included); dream: DeepDream on every frame",
    )
    defaults = DreamParams()
    dream.add_argument("--dream-layer", default=defaults.layer, help=f"one of {', '.join(DREAM_LAYERS)}")
    dream.add_argument("--dream-iterations", type=int, default=4, help="gradient steps per frame and octave")
    dream.add_argument("--dream-octaves", type=int, default=2)
    dream.add_argument(
        "--dream-feedback",
        type=float,
        default=defaults.feedback,
        help="share of the previous dreamed frame in the next (0 = dream each frame afresh)",
    )
    dream.add_argument("--dream-intensity", type=float, default=defaults.intensity, help="step size, (0, 1]")
    dream.add_argument("--dream-size", type=int, default=320, help="longer side dreamed (result scaled to output)")
    dream.add_argument("--dream-device", help="cpu or cuda (default: cuda when available)")
    return parser.parse_args(argv)


def options_from_args(args: argparse.Namespace) -> VideoOptions:
    """The flags as the control vocabulary (service/look.py checks every value, as for the data channel)."""
    if args.style and args.schedule:
        raise BadRequest("give --style or --schedule, not both")
    fields: dict[str, Any] = {
        "weights": parse_weights_field(args.style) if args.style else None,
        "strength": args.strength,
        "brush": args.brush,
        "model": args.model,
        "preserve_color": args.preserve_color,
        "stabilize": args.stabilize,
    }
    if args.mode == "dream":
        if args.style or args.schedule:
            raise BadRequest("--mode dream does not use --style or --schedule (dream styles go with --mode style)")
        if args.engine == "ray":
            raise BadRequest("--mode dream feeds each frame into the next, so it runs in order: use --engine local")
        if args.dream_size < 16:
            raise BadRequest(f"--dream-size must be at least 16 px, got {args.dream_size}")
        fields |= {
            "mode": "dream",
            "layer": args.dream_layer,
            "iterations": args.dream_iterations,
            "octaves": args.dream_octaves,
            "feedback": args.dream_feedback,
            "intensity": args.dream_intensity,
        }
    look = LookUpdate.parse({k: v for k, v in fields.items() if v is not None}, "the flags")
    try:
        steady = StabilizeOptions(blend=args.stabilize_blend, detail_target=args.stabilize_detail)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return VideoOptions(
        look=look,
        schedule=read_schedule(args.schedule) if args.schedule else None,
        steady=steady,
        dream_options=DreamOptions(
            device=args.dream_device, max_side_cpu=args.dream_size, max_side_gpu=args.dream_size
        ),
        max_size=args.max_size,
        codec=args.codec,
        container=args.container,
        workers=args.workers,
    )


def load_engine(settings: Settings) -> Engine:
    return Engine.load(settings.models_dir, settings.runtime_options(), settings.default_model)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        options = options_from_args(args)
        overrides: dict[str, Any] = {"models_dir": args.models_dir} if args.models_dir else {}
        settings = Settings(**overrides)
        if args.engine == "ray":
            from service.video import scaleout  # Ray is an optional extra

            result = scaleout.process_video_ray(
                args.input, args.output, settings.models_dir, options, args.address, args.chunks
            )
        else:
            engine = load_engine(settings)
            with progress_bar(args.quiet) as progress:
                result = process_video(args.input, args.output, engine, options, progress)
    except KeyboardInterrupt:
        _exit(f"interrupted; {args.output} was not written", 130)
    except (ServiceError, contract.ContractError, ValueError) as exc:
        _exit(str(exc))
    if result.stopped:
        _exit(f"{args.input}: {result.stopped}; {args.output} holds the {result.frames} frames before it")


@contextlib.contextmanager
def progress_bar(quiet: bool) -> Iterator[Progress | None]:
    """A tqdm bar (frames/s and ETA) on stderr, or nothing."""
    if quiet:
        yield None
        return
    from tqdm import tqdm

    with tqdm(unit="frame", dynamic_ncols=True, smoothing=0.1, delay=0.5) as bar:

        def update(done: int, total: int | None) -> None:
            if total and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        yield update


def _exit(message: str, code: int = 2) -> NoReturn:
    sys.stderr.write(f"livestyle-video: {message}\n")
    raise SystemExit(code)


if __name__ == "__main__":
    main()
