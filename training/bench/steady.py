"""Table 13: steady and still painted. Stabilization on a handheld clip at the live size (640x480).

Stabilization pulls each output toward the previous one, warped by the camera's motion. On a tripod clip
(table 3) that costs little; under a shaking hand the network paints each frame's strokes a little differently,
and averaging strokes that do not line up would quietly trade the painting for steadiness. So a real clip
(vtest.avi) is re-shot handheld: a 640x480 window of each frame is moved and turned by a seeded hand shake, and
both the flicker (QUALITY-METRIC.md) and the live-size style and content loss of the outputs (training/quality.py,
the painting at the frame's height, the input frame as the content) are compared with and without stabilization.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from service.engine import Engine
from service.stabilize import StabilizeOptions
from service.video.flicker import Measurement
from training.bench.flicker import FlickerPlan, measure_flicker
from training.bench.report import Table, fmt
from training.quality import LIVE_HEIGHT, LIVE_WIDTH, LiveScorer

TITLE = "13. Steady and still painted: stabilization on a handheld clip at 640x480"
STYLE_EVERY = 6  # the live-size loss of a clip scores every STYLE_EVERY-th output (tables 13 and 15, the follow bench)
GOAL_FLICKER, GOAL_STYLE = 0.5, 1.15


@dataclass(frozen=True)
class Shake:
    """A hand's shake as AR(1) processes: ``keep`` of the last offset stays, fresh noise adds ``step``."""

    step_px: float = 5.0  # std of the new translation each frame
    step_deg: float = 0.2  # std of the new rotation each frame
    keep: float = 0.85
    margin: int = 48  # source pixels around the window the shake may use
    seed: int = 0

    def path(self, frames: int) -> np.ndarray:
        """[frames, 3] (dx px, dy px, angle degrees), clipped to the margin."""
        rng = np.random.default_rng(self.seed)
        state, out = np.zeros(3), np.zeros((frames, 3))
        scale = np.array([self.step_px, self.step_px, self.step_deg])
        for t in range(frames):
            state = self.keep * state + rng.normal(0.0, 1.0, 3) * scale
            state[:2] = np.clip(state[:2], -self.margin * 0.75, self.margin * 0.75)
            out[t] = state
        return out


def handheld_clip(source: Path, out: Path, frames: int, shake: Shake) -> np.ndarray:
    """Write ``frames`` 640x480 frames of ``source`` as if held by hand (lossless FFV1); return the path taken."""
    capture = cv2.VideoCapture(str(source))
    if not capture.isOpened():
        raise OSError(f"cannot read the video {source}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 10.0
    cover = (LIVE_WIDTH + 2 * shake.margin, LIVE_HEIGHT + 2 * shake.margin)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"FFV1"), fps, (LIVE_WIDTH, LIVE_HEIGHT))
    if not writer.isOpened():
        raise OSError(f"cannot write {out} (FFV1)")
    path = shake.path(frames)
    written = 0
    try:
        for dx, dy, angle in path:
            ok, frame = capture.read()
            if not ok:
                break
            scale = max(cover[0] / frame.shape[1], cover[1] / frame.shape[0])
            frame = cv2.resize(
                frame,
                (round(frame.shape[1] * scale), round(frame.shape[0] * scale)),
                interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC,
            )
            centre = (frame.shape[1] / 2 + dx, frame.shape[0] / 2 + dy)
            matrix = cv2.getRotationMatrix2D(centre, angle, 1.0)
            matrix[:, 2] += (LIVE_WIDTH / 2 - centre[0], LIVE_HEIGHT / 2 - centre[1])
            writer.write(
                cv2.warpAffine(
                    frame, matrix, (LIVE_WIDTH, LIVE_HEIGHT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
                )
            )
            written += 1
    finally:
        capture.release()
        writer.release()
    if written < 2:
        raise OSError(f"{source} has fewer than 2 frames")
    return path[:written]


@dataclass(frozen=True)
class SteadyPlan:
    source: Path
    runs: tuple[tuple[str, str], ...]  # (model, style)
    paintings: dict[str, Path]  # style -> painting
    frames: int = 60
    sample_every: int = STYLE_EVERY  # the live-size loss scores every sample_every-th output
    shake: Shake = Shake()


@dataclass(frozen=True)
class SteadyResult:
    flicker: float
    style: float  # mean live-size style loss of the sampled outputs
    content: float
    frames: int
    fps: float  # stylize (+ stabilize) frames a second, as table 3 counts them


def score(measurement: Measurement, painting: Path, scorer: LiveScorer) -> SteadyResult:
    scores = [scorer.score(out, frame, painting) for frame, out in measurement.samples]
    if not scores:
        raise ValueError(f"no frames sampled from {measurement.frames}: lower sample_every")
    return SteadyResult(
        measurement.ratio,
        statistics.fmean(s.style for s in scores),
        statistics.fmean(s.content for s in scores),
        measurement.frames,
        measurement.fps,
    )


def measure_steady(
    plan: SteadyPlan, engine: Engine, scorer: LiveScorer, clip: Path
) -> tuple[dict[tuple[str, str, bool], SteadyResult], np.ndarray]:
    path = handheld_clip(plan.source, clip, plan.frames, plan.shake)
    taken = measure_flicker(
        FlickerPlan(video=clip, runs=plan.runs, frames=plan.frames, sample_every=plan.sample_every), engine
    )
    return {key: score(m, plan.paintings[key[1]], scorer) for key, m in taken.items()}, path


def _steady_table_frame(plan: SteadyPlan, path: np.ndarray) -> Table:
    """The table's title, columns, set-up and goal."""
    moved = np.hypot(*np.diff(path[:, :2], axis=0).T)
    return Table(
        title=TITLE,
        header=[
            "model",
            "style",
            "frames",
            "flicker plain",
            "flicker stabilized",
            "stabilized / plain",
            "live style plain",
            "live style stabilized",
            "stabilized / plain",
            "live content stabilized / plain",
            "frames/s plain",
            "frames/s stabilized",
            "extra cost",
        ],
        setup=(
            f"{plan.source.name} re-shot handheld at {LIVE_WIDTH}x{LIVE_HEIGHT}: each frame's window moved and "
            f"turned by a seeded shake (AR(1), keep {plan.shake.keep}, new {plan.shake.step_px} px and "
            f"{plan.shake.step_deg} deg a frame; measured: translation std {path[:, :2].std():.1f} px, rotation "
            f"std {path[:, 2].std():.2f} deg, median motion {np.median(moved):.1f} px a frame), lossless; first "
            f"{len(path)} frames as the live service runs them (service defaults {StabilizeOptions()}). Flicker "
            f"= flicker(output) / flicker(input) (QUALITY-METRIC.md); live-size style and content loss "
            f"(painting at 480 px, the input frame as content) averaged over every {plan.sample_every}th output; "
            f"frames/s counts stylize (+ stabilize) only, the network on one thread and the stabilizer's motion "
            f"(flow, detail, warp) on another, as table 3."
        ),
        goal=(
            f"stabilized flicker <= {GOAL_FLICKER}x plain, and the stabilized frames' live-size style loss <= "
            f"{GOAL_STYLE}x the plain frames' (issue 15: steadiness must not wash the painting out)."
        ),
    )


def steady_table(plan: SteadyPlan, results: dict[tuple[str, str, bool], SteadyResult], path: np.ndarray) -> Table:
    table = _steady_table_frame(plan, path)
    for model, style in plan.runs:
        plain, stable = results[(model, style, False)], results[(model, style, True)]
        flicker, paint = stable.flicker / plain.flicker, stable.style / plain.style
        table.rows.append(
            [
                model,
                style,
                str(plain.frames),
                f"{plain.flicker:.2f}",
                f"{stable.flicker:.2f}",
                f"{flicker:.2f}",
                fmt(plain.style),
                fmt(stable.style),
                f"{paint:.2f}",
                f"{stable.content / plain.content:.2f}",
                f"{plain.fps:.1f}",
                f"{stable.fps:.1f}",
                f"{plain.fps / stable.fps - 1.0:+.0%}",
            ]
        )
        table.verdicts.append(
            f"{model} / {style}: stabilized flicker {flicker:.2f}x plain "
            f"({'meets' if flicker <= GOAL_FLICKER else 'MISSES'} <= {GOAL_FLICKER}x); live-size style "
            f"{paint:.2f}x plain ({'meets' if paint <= GOAL_STYLE else 'MISSES'} <= {GOAL_STYLE}x)."
        )
    return table
