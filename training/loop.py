"""The step loop every optimisation run shares (train, add-style, distill): progress bar, log.csv, checkpoints
on schedule, previews, a time limit; and the training precisions (float32 or bfloat16 autocast)."""

from __future__ import annotations

import contextlib
import csv
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm import tqdm

log = logging.getLogger(__name__)
# fp32: everything in float32. bf16-loss: the frozen VGG19 runs in bfloat16 (best for small style nets).
# bf16: the style net too. Grams and losses stay float32; weights and Adam state stay float32 either way.
PRECISIONS = ("fp32", "bf16-loss", "bf16")


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")


def warn_if_slow_bf16(device: torch.device, precision: str) -> None:
    """bfloat16 on a CPU without AMX or AVX512-BF16 is emulated and slower than float32: say so once."""
    if precision == "fp32" or device.type != "cpu":
        return
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    if not any(getattr(torch.cpu, name, lambda: False)() for name in probes):
        log.warning(
            "--precision %s: this CPU has neither AMX nor AVX512-BF16, so bfloat16 is likely slower than fp32 here",
            precision,
        )


def autocast_for(device: torch.device, precision: str, part: str) -> contextlib.AbstractContextManager[Any]:
    """The autocast a ``part`` ("net": the style networks, "loss": VGG19) runs under at ``precision``:
    bfloat16 where the precision asks for it (fast on CPUs with AMX or AVX512-BF16, and on GPUs)."""
    enabled = precision == "bf16" if part == "net" else precision != "fp32"
    return torch.autocast(device.type, dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def set_rates(optimizer: torch.optim.Optimizer, lr: float, norm_lr_scale: float) -> None:
    """This run's rates on a resumed optimizer (convolutions, norms, the memory's if any: ``optimizer_groups``):
    the Adam moments carry over, so resuming with a lower ``--lr`` anneals."""
    rates = (lr, lr * norm_lr_scale, lr * norm_lr_scale * MEMORY_RATE)[: len(optimizer.param_groups)]
    for group, rate in zip(optimizer.param_groups, rates, strict=True):
        group["lr"] = rate


def as_float(features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.float() for k, v in features.items()}


def truncate_log(path: Path, step: int) -> None:
    """Drop log rows past ``step`` (written after the checkpoint a resumed run starts from)."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = lines[:1] + [ln for ln in lines[1:] if ln.split(",", 1)[0].isdigit() and int(ln.split(",", 1)[0]) <= step]
    if len(kept) != len(lines):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(kept))
        tmp.replace(path)


class Stepper(Protocol):
    """What :func:`run_steps` drives: one optimisation step at a time, and a preview picture."""

    step: int

    def train_step(self) -> dict[str, float]: ...

    def preview(self, path: Path) -> None: ...


@dataclass(frozen=True)
class LoopPlan:
    """How a run of steps is logged, checkpointed, previewed and stopped."""

    out_dir: Path
    steps: int
    columns: tuple[str, ...]  # log.csv columns after step and seconds
    shown: tuple[str, ...]  # losses on the progress bar
    desc: str
    checkpoint_every: int
    preview_every: int
    minutes: float = 0.0  # 0: no time limit
    main: bool = True  # rank 0 writes the log, checkpoints and previews


class StopRequests:
    """SIGINT (Ctrl-C) or SIGTERM while a single-process run steps: finish the step, save, stop; a second
    signal aborts at once. Distributed runs keep the default handlers (their ranks must stop together)."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread() and not torch.distributed.is_initialized():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        log.warning("%s: saving after this step, then stopping (again to stop without saving)", self.requested)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def run_steps(plan: LoopPlan, stepper: Stepper, save: Callable[[dict[str, float]], None]) -> dict[str, float]:
    """Step until ``plan.steps``, the time limit or a Ctrl-C / SIGTERM (each saves first): progress bar,
    log.csv (rows past a resumed checkpoint dropped, a log with other columns kept aside), ``save(ema)`` and
    previews on schedule."""
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    log_path = plan.out_dir / "log.csv"
    header = ["step", "seconds", *plan.columns]
    if plan.main:
        truncate_log(log_path, stepper.step)
        if log_path.exists() and log_path.read_text().split("\n", 1)[0] != ",".join(header):
            log_path.replace(log_path.with_name("log.before.csv"))  # older columns: keep it aside
    fresh_log = not log_path.exists()
    with log_path.open("a", newline="") as handle, StopRequests() as stop:
        writer = csv.writer(handle)
        if fresh_log and plan.main:
            writer.writerow(header)
        bar = tqdm(
            total=plan.steps, initial=min(stepper.step, plan.steps), disable=not plan.main, desc=plan.desc, unit="step"
        )
        ema = _step_until_done(plan, stepper, save, Logged(writer, handle), bar, stop)
        bar.close()
    return ema


@dataclass(frozen=True)
class Logged:
    """log.csv as it is written: the csv writer and the file to flush before each checkpoint."""

    writer: Any
    handle: Any


def _step_until_done(
    plan: LoopPlan,
    stepper: Stepper,
    save: Callable[[dict[str, float]], None],
    logged: Logged,
    bar: Any,
    stop: StopRequests,
) -> dict[str, float]:
    metrics: dict[str, float] = {}
    ema: dict[str, float] = {}
    start = time.time()
    while stepper.step < plan.steps:
        metrics = stepper.train_step()
        out_of_time = bool(plan.minutes) and time.time() - start >= 60 * plan.minutes
        last = out_of_time or stop.requested is not None
        ema = {k: v if k not in ema else 0.95 * ema[k] + 0.05 * v for k, v in metrics.items()}
        bar.update(1)
        bar.set_postfix({k: f"{ema[k]:.3g}" for k in plan.shown})
        step = stepper.step
        if plan.main:
            logged.writer.writerow([step, f"{time.time() - start:.1f}", *(f"{metrics[k]:.6g}" for k in plan.columns)])
            if step % plan.checkpoint_every == 0 or step == plan.steps or last:
                logged.handle.flush()
                save(ema)
            if step % plan.preview_every == 0 or step == plan.steps or last:
                stepper.preview(plan.out_dir / "preview.png")
        if stop.requested:
            log.info("stopped at step %d on %s (saved)", step, stop.requested)
            break
        if out_of_time:
            log.info("stopping at step %d: the %g-minute limit is reached", step, plan.minutes)
            break
    return ema or metrics


# The memory's projections (NetConfig.memory) start at zero and must grow to the size of the features they join;
# Adam moves a weight by about its rate per step at most, so at the norms' rate that takes hundreds of steps.
MEMORY_RATE = 10.0  # x the norms' rate


def optimizer_groups(net: torch.nn.Module, lr: float, norm_lr_scale: float) -> list[dict[str, Any]]:
    """Adam's parameter groups for a style network: the convolutions at ``lr``, then every conditional norm's
    per-style rows at ``lr * norm_lr_scale`` (each row sees only its own style's items), then the memory's
    projections, if the network has a memory, at ``MEMORY_RATE`` times that."""
    norms = [p for n, p in net.named_parameters() if n.endswith((".gamma", ".beta"))]
    memory = [p for n, p in net.named_parameters() if n.startswith("remember.")]
    special = {id(p) for p in (*norms, *memory)}
    groups = [
        {"params": [p for p in net.parameters() if id(p) not in special], "lr": lr},
        {"params": norms, "lr": lr * norm_lr_scale},
    ]
    return groups + ([{"params": memory, "lr": lr * norm_lr_scale * MEMORY_RATE}] if memory else [])
