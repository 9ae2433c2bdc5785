"""The flicker metric of ../shared/QUALITY-METRIC.md, and ``python -m service.video.flicker`` to measure it.

flicker(X) = mean over frame pairs of the mean |X_t - warp(X_{t-1})| over valid pixels and channels,
with DIS (preset MEDIUM) flow computed on the INPUT frames; reported as flicker(output) /
flicker(input), so 1.0 means "as steady as the source".
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from service.engine import Engine
from service.errors import ServiceError
from service.flow import FlowEstimator, FlowPair, warp
from service.look import LookUpdate
from service.settings import Settings
from service.stabilize import StabilizeOptions
from service.video.cli import load_engine
from service.video.media import DecodedFrame, FrameReader, display_dims, open_input, output_size
from service.video.pipeline import FrameStylizer, VideoOptions
from service.video.schedule import Schedule

log = logging.getLogger(__name__)


class PairFlow(Protocol):
    """Backward flow and its consistency mask between two RGB frames (``FlowEstimator.pair``)."""

    def pair(self, previous_rgb: np.ndarray, current_rgb: np.ndarray) -> FlowPair: ...


class FlickerMeter:
    """Feed (input, output) frames in order; ``ratio`` is flicker(output) / flicker(input). ``flow``: the
    metric's DIS (preset MEDIUM) unless another judge is given (a stabilizer that warps with the metric's own
    flow is best checked by a flow it does not share)."""

    def __init__(self, flow: PairFlow | None = None) -> None:
        self._flow: PairFlow = flow if flow is not None else FlowEstimator("medium")
        self._previous: tuple[np.ndarray, np.ndarray] | None = None
        self.input_scores: list[float] = []
        self.output_scores: list[float] = []

    def add(self, input_rgb: np.ndarray, output_rgb: np.ndarray) -> None:
        if self._previous is not None:
            prev_in, prev_out = self._previous
            pair = self._flow.pair(prev_in, input_rgb)
            if pair.valid.any():
                flow, valid = pair.backward, pair.valid
                self.input_scores.append(_masked_error(input_rgb, warp(prev_in, flow), valid))
                self.output_scores.append(_masked_error(output_rgb, warp(prev_out, flow), valid))
        self._previous = (input_rgb, output_rgb)

    @property
    def input_flicker(self) -> float:
        return float(np.mean(self.input_scores)) if self.input_scores else float("nan")

    @property
    def output_flicker(self) -> float:
        return float(np.mean(self.output_scores)) if self.output_scores else float("nan")

    @property
    def ratio(self) -> float:
        return self.output_flicker / self.input_flicker


def _masked_error(current: np.ndarray, warped: np.ndarray, valid: np.ndarray) -> float:
    diff = np.abs(current.astype(np.float32) - warped.astype(np.float32)) / 255.0
    return float(diff[valid].mean())


@dataclass(frozen=True)
class Measurement:
    frames: int
    ratio: float
    fps: float  # stylize (+ stabilize) only; decoding and the metric itself are not counted
    # (input, output) RGB of every ``sample_every``-th frame, for scores that need the pictures themselves
    samples: tuple[tuple[np.ndarray, np.ndarray], ...] = field(default=(), repr=False, compare=False)


def measure(video: Path, engine: Engine, options: VideoOptions, frames: int, sample_every: int = 0) -> Measurement:
    """Stylize the first ``frames`` frames in memory and score them; keep every ``sample_every``-th
    (input, output) pair (0: none).

    One frame at a time, as the live service runs: the network on a worker thread while this one
    finds the stabilization motion, then the blend.
    """
    if sample_every < 0:
        raise ValueError(f"sample_every must be >= 0, got {sample_every}")
    meter = FlickerMeter()
    samples: list[tuple[np.ndarray, np.ndarray]] = []
    with contextlib.closing(open_input(video)) as container, ThreadPoolExecutor(1) as network:
        source = container.streams.video[0]
        stylizer = FrameStylizer(engine, options, output_size(*display_dims(video, source), options.max_size))
        busy = 0.0
        count = 0
        for item in FrameReader(container, with_audio=False).items():
            if count == frames:
                break
            assert isinstance(item, DecodedFrame)
            start = time.perf_counter()
            rgb = stylizer.resized(item)
            stylized = network.submit(stylizer.stylize, rgb, item.seconds)
            motion = stylizer.motion(rgb, item.seconds)
            out = stylizer.finish(rgb, stylized.result(), motion, item.seconds)
            busy += time.perf_counter() - start
            meter.add(rgb, out)
            if sample_every and count % sample_every == sample_every - 1:
                samples.append((rgb, out))
            count += 1
    return Measurement(count, meter.ratio, count / busy, tuple(samples))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m service.flicker",
        description="Flicker ratio and frames/s of per-frame vs stabilized stylization.",
    )
    parser.add_argument("video", type=Path)
    parser.add_argument("--styles", default="great_wave,the_scream", help="comma-separated, one run each")
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--max-size", type=int)
    parser.add_argument("--stabilize-blend", type=float, default=StabilizeOptions.blend)
    parser.add_argument("--stabilize-detail", type=float, default=StabilizeOptions.detail_target)
    parser.add_argument("--models-dir", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    settings = Settings(**({"models_dir": args.models_dir} if args.models_dir else {}))
    print("| style | stabilize | frames | flicker ratio | frames/s |")
    print("|---|---|---|---|---|")
    try:
        engine = load_engine(settings)
        for style in args.styles.split(","):
            steady = StabilizeOptions(blend=args.stabilize_blend, detail_target=args.stabilize_detail)
            for stabilize in (False, True):
                options = VideoOptions(
                    look=LookUpdate(stabilize=stabilize),
                    schedule=Schedule.constant({style: 1.0}),
                    steady=steady,
                    max_size=args.max_size,
                )
                m = measure(args.video, engine, options, args.frames)
                mode = "on" if stabilize else "off"
                print(f"| {style} | {mode} | {m.frames} | {m.ratio:.2f} | {m.fps:.1f} |")
    except ServiceError as exc:
        sys.stderr.write(f"flicker: {exc}\n")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
