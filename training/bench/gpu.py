"""Table 6: per-frame latency at 1920x1080 on the CUDA and TensorRT providers, fp32 and fp16.

Only when this onnxruntime has the CUDA provider. fp16 on CUDA needs ``onnxconverter_common`` (the
graph is converted with float32 inputs/outputs kept); TensorRT builds its own fp16 engine. Timings
include the host<->device copies of ``session.run`` with numpy inputs, as the service pays them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import onnx
import onnxruntime as ort

from service import contract
from training.bench.latency import Runnable, feeds_for, time_interleaved
from training.bench.report import Table, fmt

log = logging.getLogger(__name__)
SIZE = (1920, 1080)
VARIANTS = ("CUDA fp32", "CUDA fp16", "TensorRT fp32", "TensorRT fp16")


def cuda_available() -> bool:
    return "CUDAExecutionProvider" in ort.get_available_providers()


def _fp16_copy(source: Path, target: Path) -> Path:
    from onnxconverter_common import float16  # optional: only for this table

    onnx.save(float16.convert_float_to_float16(onnx.load(str(source)), keep_io_types=True), str(target))
    return target


def _session(path: Path, variant: str, cache: Path) -> ort.InferenceSession:
    providers: list[Any]
    if variant.startswith("TensorRT"):
        if "TensorrtExecutionProvider" not in ort.get_available_providers():
            raise RuntimeError("no TensorRT provider in this onnxruntime")
        trt = {
            "trt_fp16_enable": variant.endswith("fp16"),
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache),
        }
        providers = [("TensorrtExecutionProvider", trt), "CUDAExecutionProvider"]
    else:
        providers = ["CUDAExecutionProvider"]
    session = ort.InferenceSession(str(path), providers=providers)
    wanted = providers[0][0] if isinstance(providers[0], tuple) else providers[0]
    if session.get_providers()[0] != wanted:
        raise RuntimeError(f"onnxruntime fell back to {session.get_providers()[0]}")
    return session


def gpu_latency(
    models_dir: Path, entries: list[contract.ModelEntry], runs: int, warmup: int, scratch: Path
) -> dict[tuple[str, str], float | str]:
    """{(model, variant): median ms, or the reason it could not run}."""
    runnables: dict[tuple[str, str], Runnable] = {}
    result: dict[tuple[str, str], float | str] = {}
    for e in entries:
        feeds = feeds_for(e, *SIZE)
        for variant in VARIANTS:
            try:
                path = models_dir / e.file
                if variant == "CUDA fp16":
                    path = _fp16_copy(path, scratch / f"{e.name}.fp16.onnx")
                runnables[(e.name, variant)] = Runnable(_session(path, variant, scratch), feeds)
            except Exception as exc:  # an unavailable provider or converter is a cell, not a crash
                result[(e.name, variant)] = f"not run: {str(exc).splitlines()[0][:80]}"
    keyed = {f"{k[0]}|{k[1]}": r for k, r in runnables.items()}
    for key, ms in time_interleaved(keyed, runs, warmup).items():
        name, variant = key.split("|", 1)
        result[(name, variant)] = ms
    return result


def gpu_table(
    entries: list[contract.ModelEntry], result: dict[tuple[str, str], float | str] | None, runs: int, peer: str | None
) -> Table:
    table = Table(
        title="6. GPU latency at 1920x1080 (CUDA / TensorRT)",
        header=["model", *(f"{v} ms" for v in VARIANTS)],
        setup=f"`session.run` with numpy in/out (copies included); median of {runs} interleaved runs after warm-up.",
    )
    if result is None:
        table.skipped = "this onnxruntime has no CUDAExecutionProvider (CPU-only machine or package)."
        return table
    for e in entries:
        cells = [result.get((e.name, v), "n/a") for v in VARIANTS]
        table.rows.append(
            [
                e.name + (" (peer)" if e.name == peer else ""),
                *(fmt(c) if isinstance(c, float) else str(c) for c in cells),
            ]
        )
    return table
