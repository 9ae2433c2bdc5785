"""Realtime-tier design study: ONNX Runtime CPU latency at 640x480 for candidate architectures.

    python -m training.bench.design [--runs 15] [--threads 1 2] [--out docs/realtime-design.md]

Random weights (speed does not depend on them). Candidates run interleaved, round-robin, so machine
noise hits all alike; the table reports medians and the ratio to the chosen design.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service import contract
from training.export import export_network
from training.networks import TIER_CONFIGS, NetConfig, StyleNet, count_parameters

REALTIME = TIER_CONFIGS["realtime"]
MESHED = REALTIME | {"upsample": "nearest", "output": "transposed"}  # the design bundled until 2026-12-02
PREVIOUS = MESHED | {"padding": "reflect", "decoder": "upsample_first", "output": "conv", "res_blocks": 5}
CANDIDATES: dict[str, dict[str, object]] = {
    "chosen: stride-2 stem, 16/32/64, 3 separable blocks, zero pad inside, project-first bilinear decoder, "
    "RGB at half size, sigmoid, bilinear 2x out": REALTIME,
    "same, + a full-size 3x3 conv after the upsampling": REALTIME | {"output": "upsampled"},
    "same, nearest decoder, 2x2 transposed-conv out (bundled until 2026-12-02: the mesh)": MESHED,
    "same, bilinear decoder, 2x2 transposed-conv out": MESHED | {"upsample": "bilinear"},
    "same, bilinear decoder, 3x3 conv + pixel-shuffle out": MESHED | {"upsample": "bilinear", "output": "conv"},
    "meshed, 5 blocks (chosen until 2026-12-01)": MESHED | {"res_blocks": 5},
    "meshed, 3x3 conv + pixel-shuffle out": MESHED | {"output": "conv"},
    "meshed, upsample-first decoder": MESHED | {"decoder": "upsample_first"},
    "meshed, reflect padding everywhere": MESHED | {"padding": "reflect"},
    "meshed, widths 24/48/96": MESHED | {"widths": (24, 48, 96)},
    "meshed, 4 levels 16/32/64/128": MESHED | {"widths": (16, 32, 64, 128)},
    "previous realtime (to 2026-11): reflect everywhere, upsample-first, pixel-shuffle out, 5 blocks": PREVIOUS,
    "previous, 3 blocks": PREVIOUS | {"res_blocks": 3},
    "full-res stem (stride 1), 3x3 ends, 16/32/64, separable": PREVIOUS | {"stem_stride": 1},
    "half-width Johnson 16/32/64, 9x9 ends, full convs": TIER_CONFIGS["quality"] | {"widths": (16, 32, 64)},
    "Johnson 32/64/128 (quality tier)": TIER_CONFIGS["quality"],
    # A memory network (NetConfig.memory) is fed its last painting carried onto the frame: these rows cost that.
    "chosen, + a memory: the carried painting into each decoder stage (1x1)": REALTIME | {"memory": True},
    "chosen, + a memory and its gate at full size": REALTIME | {"memory": True, "memory_gate": True},
    # Room for the memory: what a larger memory network would cost against table 1's budget.
    "chosen, + a memory and its gate, 5 blocks": REALTIME | {"memory": True, "memory_gate": True, "res_blocks": 5},
    "chosen, + a memory and its gate, widths 24/48/96": REALTIME
    | {"memory": True, "memory_gate": True, "widths": (24, 48, 96)},
}


GRID = """## The mesh (2026-12-02): speed AND the grid score

At 640x480 the design bundled until 2026-12-02 painted a regular mesh over flat areas (grid score 87, QUALITY-
METRIC.md): each 2x2 output block came from one half-resolution pixel through a 2x2 transposed convolution
whose four sub-pixel kernels differ, after two nearest-neighbour upsamplings followed by 3x3 convolutions
(Odena, Dumoulin & Olah, "Deconvolution and Checkerboard Artifacts", Distill 2016). Each candidate below was
trained the same 6 minutes (2 cores, bfloat16, about 100 steps of 4 crops of 256 px, photos and paintings at
the live frame's scale) from the bundled checkpoint, every tensor that fits copied, then scored on 4 held-out
photos x 7 paintings as 640x480 frames (`python -m training.bench.design_train --content ../shared/data/photos
--styles ../shared/data/styles --init-from models/checkpoints/realtime.pt --minutes 6`):

{grid_table}

- Bilinear upsampling in the decoder alone does not help (69): the transposed output still gives each
  sub-pixel position its own kernel. A sub-pixel (pixel-shuffle) output with ICNR initialisation (Aitken et
  al. 2017) starts balanced but learns the mesh back within 73 steps (14.5).
- Predicting RGB at half size and upsampling it bilinearly (no weight belongs to one sub-pixel position)
  brings the score to 5.4 after 111 steps, with or without a full-size 3x3 convolution after it; that
  convolution costs about 1.2x the frame time (over the 33 ms goal on one thread) for no lower score, so the
  chosen design leaves it out and runs its sigmoid at half size, before the upsampling (a bilinear mix of
  values in [0, 1] stays in [0, 1]; the study's own runs had the sigmoid after it).
- What is left of the grid (5.4, from the encoder's strided convolutions and what the decoder learns) is
  trained away by a mesh penalty, `train --grid-weight` (training/losses.py `grid_penalty`: the grid
  score's own spectral spikes on each training crop, relative to their neighbourhood; zero when none stands
  out, so it never pays to blur). The bundled models' figures are in table 9 of BENCHMARKS.md.
- Longer runs (2026-12-02, 1 thread each on 2 cores, both beside each other): the quality tier with the
  bilinear decoder and the penalty, 1020 steps from its bundled weights, is bundled (table 9). The realtime
  design above, 650 steps from the study's checkpoint (lr 1e-3, then 5e-4 with content weight 2): grid
  score 0.9 on held-out frames, but its strokes, sized for the frame, wipe out small figures (a walker in
  vtest.avi) that the meshed model keeps, and its live-size style loss is 1.8x the bundled one's. It is not
  bundled yet; its state is in `models/checkpoints/wip/realtime-live.pt` to resume (`train --resume-from`).

"""

WHY = """What the profile (ONNX Runtime's per-node profiler at 640x480, 1 thread) showed, and what changed:

- The convolutions were a third of the time. Reflection `Pad` nodes (15%) and the NCHWc layout
  conversions ONNX Runtime inserts around nodes that cannot take its blocked layout (`ReorderInput` /
  `ReorderOutput`, 19%) cost as much. Zero padding inside the network is folded into the convolution;
  reflection stays at the first convolution, where the picture's border is.
- The decoder upsampled first and then convolved at the larger size. A 1x1 convolution commutes with
  nearest upsampling, so projecting to the narrower width first costs a quarter, and the depthwise 3x3
  after the upsample runs on half the channels.
- The output layer (3x3 conv to 12 channels + `DepthToSpace` at 640x480) was the largest single cost.
  A 2x2 stride-2 transposed convolution predicts the same 2x2 sub-pixels from each half-resolution
  position, 4x cheaper, and its blocks do not overlap (no checkerboard).
- The residual blocks at 1/8 resolution are a small share: 3 blocks instead of 5 save about 16%; a
  fourth level (blocks at 1/16) saved about 12% of the 5-block design but nothing of the 3-block one.
  The design kept 5 blocks at first because the teacher had them; since 2026-12-01 it has 3 (below).
- Conditional instance norm was exported as InstanceNormalization with unit scale, then a full-size
  Mul and Add with the style's mixed scale and shift (11 of 64 ms in a profile taken under load). The
  network now hands the mixed scale and shift to the norm itself (the batch folded into the channels,
  so each sample keeps its own mix): one node, the same numbers (8e-7 apart), 0.87x the frame time at
  1 thread. Every row of the table above has it.
- Not adopted: int8 static quantization of the convolutions (onnxruntime.quantization, QDQ and
  QOperator, per-channel) ran 1.16x slower than float32 here: the depthwise convolutions and the
  quantize/dequantize pairs around every float norm cost more than the int8 arithmetic saves.

The 16/32/64 layout was first trained by distillation from the previous realtime model (`livestyle-train
distill`): the student copies the teacher's encoder, blocks and per-style norms, then learns its
outputs. The 3-block model was distilled the same way from the 5-block one (it copies all of its
tensors: the first three blocks and everything around them)"""


def make_session(path: Path, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, help="also write the table as markdown here")
    parser.add_argument("--grid-table", type=Path, help="the design_train table (markdown) to include")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    frame = rng.random((1, 3, 480, 640), dtype=np.float32)
    memory = rng.random((1, contract.MEMORY_CHANNELS, 480, 640), dtype=np.float32)  # values do not change the cost
    weights = contract.one_hot(0, 7)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sessions: dict[tuple[str, int], ort.InferenceSession] = {}
        params: dict[str, int] = {}
        feeds: dict[str, dict[str, np.ndarray]] = {}
        for name, cfg in CANDIDATES.items():
            net = StyleNet(NetConfig(num_styles=7, **cfg))  # type: ignore[arg-type]
            path = Path(tmp) / f"{len(params)}.onnx"
            export_network(net, path, memory=net.config.memory)
            params[name] = count_parameters(net)
            feeds[name] = {contract.INPUT_FRAME: frame, contract.INPUT_WEIGHTS: weights}
            if net.config.memory:
                feeds[name][contract.INPUT_MEMORY] = memory
            for t in args.threads:
                sessions[(name, t)] = make_session(path, t)
        times: dict[tuple[str, int], list[float]] = {k: [] for k in sessions}
        for (name, _), s in sessions.items():  # warm-up
            s.run(None, feeds[name])
        for _ in range(args.runs):
            for key, s in sessions.items():
                start = time.perf_counter()
                s.run(None, feeds[key[0]])
                times[key].append((time.perf_counter() - start) * 1000)
    chosen = next(iter(CANDIDATES))
    header = "| design | params | " + " | ".join(f"{t} thread{'s' * (t > 1)} (ms)" for t in args.threads)
    header += " | ratio to chosen (1 thread) |"
    lines = [header, "|" + "---|" * (3 + len(args.threads))]
    base = statistics.median(times[(chosen, args.threads[0])])
    for name in CANDIDATES:
        med = [statistics.median(times[(name, t)]) for t in args.threads]
        lines.append(
            f"| {name} | {params[name] / 1e3:.0f} k | "
            + " | ".join(f"{m:.1f}" for m in med)
            + f" | {med[0] / base:.2f} |"
        )
        rows.append(med)
    meta = (
        f"{date.today()}, {platform.processor() or platform.machine()}, onnxruntime {ort.__version__}, "
        f"640x480, median of {args.runs} interleaved runs, spinning off"
    )
    table = "\n".join(lines)
    print(meta)
    print(table)
    if args.out:
        write_study(args.out, meta, table, args.grid_table)


def write_study(out: Path, meta: str, table: str, grid_table: Path | None) -> None:
    """The study's file, written whole. An existing one keeps everything from its first section on (the notes
    written since): only its head, the date and the table, is replaced."""
    command = f"python -m training.bench.design --out {out}"
    head = f"# Realtime tier design study\n\n{meta}\n\nCommand: `{command}`\n\n{table}\n\n"
    if out.exists():
        if grid_table:
            raise SystemExit(f"--grid-table starts a new study file; {out} exists and keeps its own")
        text = out.read_text()
        start = text.find("\n## ")
        body = head + (text[start + 1 :] if start >= 0 else "")
    else:
        grid = GRID.format(grid_table=grid_table.read_text().strip()) if grid_table else ""
        body = f"{head}{grid}{WHY}\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(body)
    tmp.replace(out)


if __name__ == "__main__":
    main()
