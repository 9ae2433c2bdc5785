"""Tables 1 and 6: per-frame latency through ONNX Runtime, every model and the peer in one process.

Runs are interleaved round-robin (each round runs every model once), so machine noise hits all alike;
the figure is the median after warm-up. Only ``session.run`` is timed: the network, not the pre/post.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service import contract
from service.engine import RuntimeOptions, session_options
from training.bench.report import Table, fmt

log = logging.getLogger(__name__)
SIZES = ((320, 240), (640, 480), (1280, 720))
GOAL_MS, GOAL_SPEEDUP = 33.0, 6.0


@dataclass(frozen=True)
class Runnable:
    """A session and the feeds of one frame for it."""

    session: ort.InferenceSession
    feeds: dict[str, np.ndarray]


def feeds_for(entry: contract.ModelEntry, width: int, height: int) -> dict[str, np.ndarray]:
    frame = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)
    return {
        contract.INPUT_FRAME: contract.pad_frame(frame, entry.size_multiple),
        contract.INPUT_WEIGHTS: contract.one_hot(0, len(entry.styles)),
    }


def time_interleaved(runnables: Mapping[str, Runnable], runs: int, warmup: int) -> dict[str, float]:
    """Median milliseconds per run of each runnable, run round-robin after ``warmup`` rounds."""
    for _ in range(warmup):
        for r in runnables.values():
            r.session.run(None, r.feeds)
    times: dict[str, list[float]] = {k: [] for k in runnables}
    for _ in range(runs):
        for key, r in runnables.items():
            start = time.perf_counter()
            r.session.run(None, r.feeds)
            times[key].append((time.perf_counter() - start) * 1000.0)
    return {k: statistics.median(v) for k, v in times.items()}


def cpu_latency(
    models_dir: Path,
    entries: list[contract.ModelEntry],
    options: RuntimeOptions,
    sizes: tuple[tuple[int, int], ...],
    runs: int,
    warmup: int,
) -> dict[tuple[str, str], float]:
    """{(model, "WxH"): median ms} on the CPU provider with the service's thread settings."""
    so = session_options(options)
    sessions = {
        e.name: ort.InferenceSession(str(models_dir / e.file), so, providers=["CPUExecutionProvider"]) for e in entries
    }
    result: dict[tuple[str, str], float] = {}
    for width, height in sizes:
        runnables = {e.name: Runnable(sessions[e.name], feeds_for(e, width, height)) for e in entries}
        for name, ms in time_interleaved(runnables, runs, warmup).items():
            result[(name, f"{width}x{height}")] = ms
        log.info("latency at %dx%d done", width, height)
    return result


def latency_table(
    entries: list[contract.ModelEntry],
    medians: dict[tuple[str, str], float],
    peer: str | None,
    sizes: tuple[tuple[int, int], ...],
    runs: int,
    warmup: int,
    options: RuntimeOptions,
) -> Table:
    labels = [f"{w}x{h}" for w, h in sizes]
    header = ["model", "tier", *(f"{s} ms" for s in labels)]
    if peer:
        header += [f"peer / model at {s}" for s in labels]
    table = Table(
        title="1. Per-frame latency, ONNX Runtime CPU",
        header=header,
        setup=(
            f"`session.run` only, random frame, style 0; median of {runs} interleaved runs after {warmup} "
            f"warm-up rounds; intra-op threads {options.intra_op_threads}, spinning "
            f"{'on' if options.spinning else 'off'} (the service's settings). 'peer / model' > 1 means "
            "ours is faster."
        ),
        goal=f"realtime tier <= {GOAL_MS:.0f} ms per 640x480 frame and >= {GOAL_SPEEDUP:.0f}x faster than the peer.",
    )
    for e in entries:
        row = [e.name, "peer" if e.name == peer else e.tier, *(fmt(medians[(e.name, s)]) for s in labels)]
        if peer:
            row += [f"{medians[(peer, s)] / medians[(e.name, s)]:.2f}x" for s in labels]
        table.rows.append(row)
    vga = "640x480"
    if vga not in labels:
        return table
    for e in entries:
        if e.tier != "realtime" or e.name == peer:
            continue
        ms = medians[(e.name, vga)]
        met = "meets" if ms <= GOAL_MS else "MISSES"
        table.verdicts.append(f"{e.name}: {ms:.1f} ms per 640x480 frame {met} the {GOAL_MS:.0f} ms goal.")
        if peer:
            speedup = medians[(peer, vga)] / ms
            met = "meets" if speedup >= GOAL_SPEEDUP else "MISSES"
            table.verdicts.append(
                f"{e.name}: {speedup:.2f}x faster than the peer at 640x480 {met} the "
                f"{GOAL_SPEEDUP:.0f}x goal (headline figure)."
            )
    if not peer:
        table.verdicts.append("No peer in this run: the speed-up goal is not assessed.")
    return table
