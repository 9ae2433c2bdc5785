"""A network with a memory (``NetConfig.memory``, trained with ``--memory-weight``) painting real and shaken clips.

Each frame is painted with the last painting carried onto it as the service's stabilizer carries its memory
(``training.carry.CARRY``: the network does the carrying). Beside it, on the same frames: the
shipped model plain (every ratio's baseline) and with Steady, the memory network with no memory (the painting the
browser and a first frame get) and given its own painting of the same frame as the memory (exactly right, trusted
everywhere: what the network does to a memory with no flow to blame), and the carried painting with Steady on top.
Flicker by the metric's flow and by Farneback's (``steady_study``'s second judge), live-size style and content, each
over the shipped plain frames.

    python -m training.bench.memory CHECKPOINT [--clips carphone:still,vtest.avi:0] [--styles great_wave,the_scream] \
        [--sheet memory.png] [--screen]

``--sheet`` also writes each clip's last frame as every row painted it, cut from the middle at full size (the
strokes are what a memory could soften), one column per clip and painting.

A clip is ``NAME:SEED``: a clip in DATA/video or carphone, with a seeded shake or ``still`` (its own camera).
Torch on the CPU (the ONNX contract has no memory input yet), so a few minutes per clip and painting.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from service import contract
from service.stabilize import Motion, StabilizeOptions, Stabilizer
from training.bench.real_motion import STILL
from training.bench.steady import STYLE_EVERY, Shake, handheld_clip
from training.bench.steady_study import _read, clip_path, measured
from training.carry import CARRY, memory_of
from training.checkpoint import CheckpointError, build_from_checkpoint, load_checkpoint
from training.images import save_png
from training.networks import StyleNet, memory_input
from training.sheet import labelled_grid

REPO = Path(__file__).resolve().parents[2]
SHEET_CELL = (320, 240)
SCREENED = ("memory network, carried", "carried, then Steady")  # the rows a training run is judged by


def _tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(contract.image_to_frame(rgb))


def _image(frame: torch.Tensor) -> np.ndarray:
    return contract.frame_to_image(frame.numpy())


@torch.no_grad()
def carried(net: StyleNet, frames: Sequence[np.ndarray], weights: torch.Tensor) -> list[np.ndarray]:
    """Every frame painted with the last painting carried onto it by the stabilizer's motion (none on the first)."""
    stabilizer, outputs = Stabilizer(CARRY), []
    for frame in frames:
        motion = stabilizer.motion(frame)
        painted = _image(net(_tensor(frame), weights, memory_of(motion)))
        stabilizer.blend(Motion(motion.small, None, None), painted)  # remembered as painted, not blended
        outputs.append(painted)
    return outputs


def exact(painting: torch.Tensor) -> torch.Tensor:
    """A memory that is exactly right: the painting of this very frame, trusted everywhere. A network that keeps
    what it is given paints the frame as it did without one; one that softens it shows it here, with no flow to
    blame."""
    return memory_input(painting, torch.ones_like(painting[:, :1]))


@torch.no_grad()
def painted_by(
    net: StyleNet, frames: Sequence[np.ndarray], weights: torch.Tensor, steady: StabilizeOptions
) -> dict[str, list[np.ndarray]]:
    """The memory network's rows: no memory, an exact one, carried, and carried with Steady on top."""
    fresh = [_image(net(_tensor(f), weights)) for f in frames]
    own = [_image(net(_tensor(f), weights, exact(_tensor(p)))) for f, p in zip(frames, fresh, strict=True)]
    memory = carried(net, frames, weights)
    return {
        "memory network, no memory": fresh,
        "given its own painting": own,
        "memory network, carried": memory,
        "carried, then Steady": steadied(frames, memory, steady),
    }


def steadied(
    frames: Sequence[np.ndarray], paintings: Sequence[np.ndarray], options: StabilizeOptions
) -> list[np.ndarray]:
    stabilizer = Stabilizer(options)
    return [stabilizer.step(f, p) for f, p in zip(frames, paintings, strict=True)]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.bench.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="a checkpoint of a network with a memory")
    parser.add_argument("--shipped", type=Path, default=REPO / "models" / "checkpoints" / "realtime.pt")
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("LIVESTYLE_DATA", REPO.parent / "shared" / "data"))
    )
    parser.add_argument("--clips", default="carphone:still,vtest.avi:0", help="NAME:SEED,... (seed: a shake or still)")
    parser.add_argument("--styles", default="great_wave,the_scream")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--sheet", type=Path, help="a PNG of each clip's last frame as every row painted it")
    parser.add_argument(
        "--screen", action="store_true", help="measure the carried rows only, skipping the others: to screen a run"
    )
    return parser


def _middle(rgb: np.ndarray) -> Image.Image:
    """The middle SHEET_CELL of a frame, at full size."""
    width, height = SHEET_CELL
    top, left = max(0, (rgb.shape[0] - height) // 2), max(0, (rgb.shape[1] - width) // 2)
    return Image.fromarray(rgb[top : top + height, left : left + width])


def _frames(args: argparse.Namespace, clip: str) -> list[np.ndarray]:
    name, _, seed = clip.partition(":")
    source = clip_path(argparse.Namespace(video=name, data=args.data))
    with tempfile.TemporaryDirectory() as tmp:
        handheld_clip(
            source, Path(tmp) / "clip.mkv", args.frames, STILL if seed == "still" else Shake(seed=int(seed or 0))
        )
        return _read(Path(tmp) / "clip.mkv")


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        checkpoint = load_checkpoint(args.checkpoint)
        net, styles = build_from_checkpoint(checkpoint)
        shipped, shipped_styles = build_from_checkpoint(load_checkpoint(args.shipped))
        if not net.config.memory:
            raise ValueError(f"{args.checkpoint}: a network without a memory")
        if styles != shipped_styles:
            raise ValueError(f"styles {styles} differ from the shipped model's {shipped_styles}")
        unknown = [s for s in args.styles.split(",") if s not in styles]
        if unknown:
            raise ValueError(f"no style {unknown[0]!r}; the checkpoint has {styles}")
        # the service's Steady for the shipped model: its calibrated moving blend from the manifest
        entries = {e.name: e for e in contract.read_manifest(REPO / "models" / contract.MANIFEST_NAME)}
        steady = StabilizeOptions().calibrated(entries["realtime"].moving_blend)
        clips = [(c, _frames(args, c)) for c in args.clips.split(",") if c]
    except (ValueError, OSError, CheckpointError) as exc:
        sys.stderr.write(f"memory bench: {exc}\n")
        raise SystemExit(2) from None
    from training.quality import LiveScorer  # the loss network: only once the arguments are known good

    scorer = LiveScorer()
    net.eval()
    shipped.eval()
    print(f"{args.checkpoint.name} (step {checkpoint['step']}), over the shipped model plain")
    print("\n| clip | painting | painting by | flicker | flicker, Farneback | live-size style | live-size content |")
    print("|---|---|---|---|---|---|---|")
    last: dict[str, list[Image.Image]] = {}
    for clip, frames in clips:
        for style in args.styles.split(","):
            weights = torch.nn.functional.one_hot(torch.tensor([styles.index(style)]), len(styles)).float()
            painting = args.data / "styles" / f"{style}.jpg"

            def score(out: np.ndarray, frame: np.ndarray, painting: Path = painting) -> tuple[float, float]:
                s = scorer.score(out, frame, painting)
                return s.style, s.content

            with torch.no_grad():
                plain = [_image(shipped(_tensor(f), weights)) for f in frames]
            rows = {"shipped, Steady": steadied(frames, plain, steady), **painted_by(net, frames, weights, steady)}
            rows = {name: rows[name] for name in (SCREENED if args.screen else rows)}
            base = measured(frames, plain, score, STYLE_EVERY)
            for name, outputs in rows.items():
                m = measured(frames, outputs, score, STYLE_EVERY)
                ratios = " | ".join(f"{m[i] / base[i]:.2f}" for i in (0, 3, 1, 2))  # the columns' order
                print(f"| {clip} | {style} | {name} | {ratios} |", flush=True)
            for name, outputs in {"frame": frames, "shipped, plain": plain, **rows}.items():
                last.setdefault(name, []).append(_middle(outputs[-1]))
    if args.sheet:
        columns = [f"{clip} / {style}" for clip, _ in clips for style in args.styles.split(",")]
        save_png(labelled_grid(list(last.items()), SHEET_CELL, columns), args.sheet)
        print(f"\nlast frames: {args.sheet}")


if __name__ == "__main__":
    main()
