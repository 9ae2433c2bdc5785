"""Table 3: flicker (QUALITY-METRIC.md) and its cost on a video, with and without stabilization.

Uses the service's own measurement (``service.video.flicker.measure``): per-frame stylization through the
engine, optionally stabilized, scored as flicker(output) / flicker(input).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from service.engine import Engine
from service.look import LookUpdate
from service.stabilize import StabilizeOptions
from service.video.flicker import Measurement, measure
from service.video.pipeline import VideoOptions
from service.video.schedule import Schedule
from training.bench.report import Table

log = logging.getLogger(__name__)
GOAL_RATIO, GOAL_COST = 0.5, 0.10


@dataclass(frozen=True)
class FlickerPlan:
    video: Path
    runs: tuple[tuple[str, str], ...]  # (model, style)
    frames: int = 120
    max_size: int | None = None
    peer: str | None = None
    sample_every: int = 0  # keep every this many (input, output) frames in each Measurement (0: none)


def measure_flicker(plan: FlickerPlan, engine: Engine) -> dict[tuple[str, str, bool], Measurement]:
    results = {}
    for model, style in plan.runs:
        for stabilize in (False, True):
            options = VideoOptions(
                look=LookUpdate(model=model, stabilize=stabilize),
                schedule=Schedule.constant({style: 1.0}),
                max_size=plan.max_size,
            )
            results[(model, style, stabilize)] = measure(plan.video, engine, options, plan.frames, plan.sample_every)
            log.info("flicker %s/%s stabilize=%s done", model, style, stabilize)
    return results


def flicker_table(plan: FlickerPlan, results: dict[tuple[str, str, bool], Measurement]) -> Table:
    table = Table(
        title="3. Flicker and cost on a video",
        header=[
            "model",
            "style",
            "frames",
            "flicker naive",
            "flicker stabilized",
            "stabilized / naive",
            "frames/s naive",
            "frames/s stabilized",
            "extra cost",
        ],
        setup=(
            f"{plan.video.name}, first {plan.frames} frames"
            + (f", longer side {plan.max_size} px" if plan.max_size else ", full size")
            + "; flicker = flicker(output) / flicker(input), DIS flow on the input frames (QUALITY-METRIC.md); "
            f"stabilization: service defaults {StabilizeOptions()}; frames one at a time as the live service "
            "runs them (the network on one thread while the stabilizer's flow and warp run on another); "
            "frames/s counts stylize (+ stabilize) only."
        ),
        goal=f"stabilized flicker <= {GOAL_RATIO}x naive at <= {GOAL_COST:.0%} extra cost.",
    )
    for model, style in plan.runs:
        naive, stable = results[(model, style, False)], results[(model, style, True)]
        ratio, cost = stable.ratio / naive.ratio, naive.fps / stable.fps - 1.0
        table.rows.append(
            [
                f"{model}{' (peer)' if model == plan.peer else ''}",
                style,
                str(naive.frames),
                f"{naive.ratio:.2f}",
                f"{stable.ratio:.2f}",
                f"{ratio:.2f}",
                f"{naive.fps:.1f}",
                f"{stable.fps:.1f}",
                f"{cost:+.0%}",
            ]
        )
        if model == plan.peer:
            continue
        flick_ok, cost_ok = ratio <= GOAL_RATIO, cost <= GOAL_COST
        table.verdicts.append(
            f"{model} / {style}: stabilized flicker {ratio:.2f}x naive ({'meets' if flick_ok else 'MISSES'} "
            f"<= {GOAL_RATIO}x) at {cost:+.0%} cost ({'meets' if cost_ok else 'MISSES'} <= {GOAL_COST:.0%})."
        )
    return table
