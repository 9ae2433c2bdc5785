"""Table 5: training throughput, steps per second for each tier (a real ``Trainer.train_step``)."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from training.bench.report import Table
from training.loop import PRECISIONS
from training.networks import TIER_CONFIGS
from training.train import TrainConfig, Trainer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThroughputPlan:
    content_dir: Path
    paintings: tuple[Path, ...]
    crop_size: int = 256
    batch_size: int = 4
    warmup: int = 1
    steps: int = 5
    exclude: tuple[str, ...] = ("bsds_val_*",)
    teacher: Path | None = None  # a trained checkpoint: also time a distillation step into the realtime design
    precisions: tuple[str, ...] = PRECISIONS


def devices() -> list[str]:
    return ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def measure_throughput(plan: ThroughputPlan) -> dict[tuple[str, str, str], float]:
    """{(tier, device, precision): steps per second}."""
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for device in devices():
            for tier in TIER_CONFIGS:
                for precision in plan.precisions:
                    cfg = TrainConfig(
                        content_dir=plan.content_dir,
                        style_images=plan.paintings,
                        out_dir=Path(tmp) / tier,
                        tier=tier,
                        steps=plan.warmup + plan.steps,
                        batch_size=plan.batch_size,
                        crop_size=plan.crop_size,
                        exclude=plan.exclude,
                        device=device,
                        precision=precision,
                    )
                    result[(tier, device, precision)] = _rate(Trainer(cfg).train_step, plan, device)
                    log.info("throughput %s on %s in %s done", tier, device, precision)
            if plan.teacher is not None:
                for precision in plan.precisions:
                    result[(DISTILL, device, precision)] = _distill_rate(plan, Path(tmp) / "distill", device, precision)
    return result


DISTILL = "realtime, distilled (`distill`)"


def _rate(step: Callable[[], object], plan: ThroughputPlan, device: str) -> float:
    """Steps per second of ``step`` after the plan's warm-up (CUDA work waited for)."""
    for _ in range(plan.warmup):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(plan.steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return plan.steps / (time.perf_counter() - start)


def _distill_rate(plan: ThroughputPlan, out: Path, device: str, precision: str) -> float:
    from training.distill import DistillConfig, Distiller

    assert plan.teacher is not None
    distiller = Distiller(
        DistillConfig(
            teachers=(plan.teacher,),
            content_dir=plan.content_dir,
            out_dir=out,
            batch_size=plan.batch_size,
            crop_size=plan.crop_size,
            exclude=plan.exclude,
            device=device,
            precision=precision,
        )
    )
    return _rate(distiller.train_step, plan, device)


def throughput_table(plan: ThroughputPlan, result: dict[tuple[str, str, str], float]) -> Table:
    table = Table(
        title="5. Training throughput",
        header=["tier", "device", "precision", "steps/s", "s/step", "images/s", "steps per hour", "vs fp32"],
        setup=(
            f"`Trainer.train_step` (data loading, network, VGG19 forward/backward, Adam) on {len(plan.paintings)} "
            f"styles, batch {plan.batch_size} of {plan.crop_size}x{plan.crop_size} crops; {plan.steps} timed "
            f"steps after {plan.warmup} warm-up; torch threads: all cores. The distilled row times "
            f"`Distiller.train_step` (teacher forward, student forward/backward, VGG19 to relu2_2) at the same "
            f"batch and crop. Precision (`--precision`): fp32; bf16-loss runs the frozen VGG19 in bfloat16; bf16 "
            f"the style network too (autocast; weights, Adam state, Grams and losses stay float32). bfloat16 is "
            f"fast only on CPUs with AMX or AVX512-BF16 (see the machine line) and on GPUs."
        ),
        goal="none set; for planning training time (PERF-NOTES.md: about 1.2-1.3 s/step at 128 px, batch 4).",
    )
    for (tier, device, precision), rate in result.items():
        base = result.get((tier, device, "fp32"))
        speedup = f"{rate / base:.2f}x" if base else "-"
        table.rows.append(
            [
                tier,
                device,
                precision,
                f"{rate:.3g}",
                f"{1 / rate:.3g}",
                f"{rate * plan.batch_size:.3g}",
                f"{rate * 3600:.0f}",
                speedup,
            ]
        )
    return table
