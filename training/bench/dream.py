"""Table 7: DeepDream two ways, the feed-forward dream styles and iterative DeepDream, speed and strength.

Both run as the service runs them: a dream style through ``Engine.stylize`` (the ONNX network, one-hot
on the dream style), iterative DeepDream through ``service.dream.Dreamer`` (VGG19 gradient ascent at a
reduced resolution, upscaled to the frame). Strength is the factor by which each raises its layer's
mean squared VGG19 activation over the camera frame, measured on the 640x480 result the viewer sees:
on single held-out photos, and on a still photo after several frames of feedback (the live steady state).
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from service import contract
from service.dream import Dreamer, DreamOptions, DreamParams
from service.engine import Engine
from training.bench.report import Table, fmt
from training.features import load_vgg
from training.images import grid, open_rgb, resize_short_side, save_png
from training.losses import activation_energy

log = logging.getLogger(__name__)
FRAME = (640, 480)
BLEND_PAINTING = "starry_night"  # the sheet's painting + dream blend, when the model has it


@dataclass(frozen=True)
class IterativeSetting:
    """One iterative-dream configuration to measure (a layer at a dreamed size)."""

    layer: str
    side: int  # longer side dreamed
    iterations: int
    octaves: int

    @property
    def label(self) -> str:
        return f"iterative {self.layer}, {self.iterations} it x {self.octaves} oct at {self.side} px"


@dataclass(frozen=True)
class DreamPlan:
    photos: tuple[Path, ...]
    sheet: Path
    runs: int = 3
    feedback_frames: int = 6
    sides: tuple[int, ...] = (160, 320)  # the service's CPU default, and livestyle-video's


@dataclass
class DreamRow:
    method: str
    layer: str
    ms: float
    gain_single: float
    gain_feedback: float | None = None


def frame_of(path: Path) -> np.ndarray:
    """A held-out photo as a 640x480 camera frame (resized and centre-cropped)."""
    w, h = FRAME
    img = resize_short_side(open_rgb(path), h)
    if img.size[0] < w:
        img = resize_short_side(img, round(h * w / img.size[0]) + 1)
    left, top = (img.size[0] - w) // 2, (img.size[1] - h) // 2
    return np.asarray(img.crop((left, top, left + w, top + h)))


class Energy:
    """Mean squared activation of VGG19 layers for HxWx3 uint8 frames."""

    def __init__(self, layers: tuple[str, ...]) -> None:
        self.vgg = load_vgg(layers)

    def __call__(self, rgb: np.ndarray, layer: str) -> float:
        with torch.no_grad():
            image = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
            return float(activation_energy(self.vgg(image)[layer]).mean())

    def gain(self, before: np.ndarray, after: np.ndarray, layer: str) -> float:
        return self(after, layer) / self(before, layer)


def geomean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


def timed(call: Callable[[], object], runs: int) -> float:
    """Median milliseconds of ``call()`` over ``runs`` calls after one warm-up call."""
    call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def dream_styles(entries: list[contract.ModelEntry]) -> list[tuple[contract.ModelEntry, str, str]]:
    """(model, dream style, layer) of every bundled dream style."""
    return [(e, s, str(info["layer"])) for e in entries for s, info in e.dreams.items()]


def measure_dream(plan: DreamPlan, engine: Engine, entries: list[contract.ModelEntry]) -> list[DreamRow]:
    styles = dream_styles(entries)
    layers = tuple(dict.fromkeys(layer for _, _, layer in styles)) or ("relu4_2",)
    energy = Energy(layers)
    frames = [frame_of(p) for p in plan.photos]
    rows: list[DreamRow] = []
    sheet_rows: list[list[Image.Image]] = [[Image.fromarray(f)] for f in frames[:3]]
    for entry, style, layer in styles:
        weights = contract.one_hot(entry.styles.index(style), len(entry.styles))
        outs = [engine.stylize(f, weights, model=entry.name) for f in frames]
        ms = timed(partial(engine.stylize, frames[0], weights, model=entry.name), plan.runs)
        gain = geomean([energy.gain(f, o, layer) for f, o in zip(frames, outs, strict=True)])
        rows.append(DreamRow(f"{entry.name}: {style} (feed-forward)", layer, ms, gain))
        for row, out in zip(sheet_rows, outs, strict=False):
            row.append(Image.fromarray(out))
        log.info("dream style %s: %.1f ms, gain %.2f", style, ms, gain)
    blend_entry = next((e for e, _, _ in styles if BLEND_PAINTING in e.styles), None)
    if blend_entry is not None:
        last_dream = [s for e, s, _ in styles if e is blend_entry][-1]
        mix = np.zeros((1, len(blend_entry.styles)), np.float32)
        mix[0, blend_entry.styles.index(BLEND_PAINTING)] = 0.7
        mix[0, blend_entry.styles.index(last_dream)] = 0.3
        for row, f in zip(sheet_rows, frames, strict=False):
            row.append(Image.fromarray(engine.stylize(f, mix, model=blend_entry.name)))
    for side in plan.sides:
        dreamer = Dreamer(DreamOptions(device="cpu", max_side_cpu=side))
        iterations, octaves = (2, 1) if side <= 160 else (4, 2)
        for layer in layers:
            setting = IterativeSetting(layer, side, iterations, octaves)
            params = DreamParams(layer=layer, iterations=iterations, octaves=octaves)
            dreamer.warm(layer)
            single = [dreamer.dream(f, None, params.updated({"feedback": 0.0})) for f in frames]
            ms = timed(partial(dreamer.dream, frames[0], frames[0], params), plan.runs)
            stills = []
            for f in frames[: len(sheet_rows)]:  # a still camera dreamed frame after frame, as live
                state = None
                for step in range(plan.feedback_frames):
                    state = dreamer.dream(f, state, params, seed=step)
                assert state is not None
                stills.append(state)
            gain = geomean([energy.gain(f, o, layer) for f, o in zip(frames, single, strict=True)])
            fed = geomean([energy.gain(f, o, layer) for f, o in zip(frames, stills, strict=False)])
            rows.append(DreamRow(setting.label, layer, ms, gain, fed))
            if side == max(plan.sides):
                for row, still in zip(sheet_rows, stills, strict=True):
                    row.append(Image.fromarray(still))
            log.info("%s: %.0f ms, gain %.2f, after feedback %.2f", setting.label, ms, gain, fed)
    save_png(grid(sheet_rows, cell=200), plan.sheet)
    return rows


def dream_table(plan: DreamPlan, rows: list[DreamRow]) -> Table:
    table = Table(
        title="7. DeepDream two ways: dream styles vs iterative DeepDream",
        header=[
            "method",
            "layer",
            "ms per 640x480 frame",
            "fps",
            "activation gain, one frame",
            f"gain after {plan.feedback_frames} frames of feedback",
        ],
        setup=(
            f"{len(plan.photos)} held-out photos as 640x480 frames; times are medians of {plan.runs} runs "
            "(feed-forward: `Engine.stylize`, 1 ORT thread; iterative: `Dreamer.dream` on the CPU with torch's "
            "default threads). Gain = mean squared VGG19 activation of the layer on the result / on the frame, "
            "geometric mean over the photos; the feedback column dreams still photos frame after frame with the "
            "service's default feedback 0.7, as a live stream does."
        ),
        goal="a dream style at painting speed; iterative DeepDream usable (a few fps) on this CPU.",
    )
    for r in rows:
        table.rows.append(
            [
                r.method,
                r.layer,
                fmt(r.ms),
                fmt(1000.0 / r.ms),
                f"{r.gain_single:.2f}x",
                f"{r.gain_feedback:.2f}x" if r.gain_feedback is not None else "n/a (no state)",
            ]
        )
    fast = [r for r in rows if "feed-forward" in r.method]
    slow = [r for r in rows if r.method.startswith("iterative")]
    for f in fast:
        for s in (s for s in slow if s.layer == f.layer):
            table.verdicts.append(
                f"{f.layer}: the dream style runs {s.ms / f.ms:.0f}x faster than {s.method} "
                f"with {f.gain_single / s.gain_single:.2f}x its one-frame activation gain."
            )
    table.notes.append(
        f"Contact sheet: {plan.sheet.name} (photo, each dream style, 70% {BLEND_PAINTING} + 30% "
        f"dream, iterative DeepDream at {max(plan.sides)} px after {plan.feedback_frames} frames)."
    )
    return table
