"""What every optimisation run of a style network shares (train, add-style, distill): its data, its schedule,
its machine and its precision. :class:`RunConfig` is the one place those settings are declared and checked;
``TrainConfig`` and ``DistillConfig`` add their own losses, and ``training/cli.py`` maps the flags once."""

from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from training import images
from training.loop import LoopPlan, check_precision, warn_if_slow_bf16

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Content, output folder, schedule, machine and precision of one run; stored in its checkpoint."""

    content_dir: Path
    out_dir: Path
    tier: str = "realtime"
    steps: int = 4000
    batch_size: int = 4
    crop_size: int = 128
    # Photos scaled so their short side is this (x[1, 1.25]) before cropping: 480 trains strokes for the
    # 640x480 frame people watch. 0: crop_size-based.
    scene_size: int = 0
    lr: float = 1e-3
    norm_lr_scale: float = 10.0  # per-style gamma/beta learn faster: each sees only its style's items
    exclude: tuple[str, ...] = ()
    checkpoint_every: int = 100
    preview_every: int = 250
    seed: int = 0
    device: str = "cpu"
    threads: int = 0
    vgg_weights: Path | None = None
    # A fresh network of the tier's design starts with every tensor of this checkpoint that fits (same name
    # and shape): a new decoder keeps the trained encoder, blocks and per-style norms. None: train from
    # scratch (train) or from the teacher's tensors that fit (distill).
    init_from: Path | None = None
    minutes: float = 0.0  # stop (and save) after this much training time, before ``steps`` if need be; 0: no limit
    precision: str = "fp32"  # one of training.loop.PRECISIONS
    preview_images: tuple[Path, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.crop_size < 16:
            raise ValueError("steps and batch size must be >= 1, crop size >= 16")
        if self.scene_size < 0:
            raise ValueError(f"scene size must be >= 0, got {self.scene_size}")
        if not self.minutes >= 0:
            raise ValueError(f"minutes must be >= 0, got {self.minutes}")
        if not (self.lr > 0 and self.norm_lr_scale > 0):
            raise ValueError("learning rate and norm rate scale must be > 0")
        check_precision(self.precision)

    def to_json(self) -> dict[str, Any]:
        return {
            k: (str(v) if isinstance(v, Path) else [_json_item(x) for x in v] if isinstance(v, tuple) else v)
            for k, v in asdict(self).items()
        }

    def loop_plan(self, columns: tuple[str, ...], shown: tuple[str, ...], desc: str, main: bool = True) -> LoopPlan:
        return LoopPlan(
            out_dir=self.out_dir,
            steps=self.steps,
            columns=columns,
            shown=shown,
            desc=desc,
            checkpoint_every=self.checkpoint_every,
            preview_every=self.preview_every,
            minutes=self.minutes,
            main=main,
        )


def _json_item(value: Any) -> Any:
    """A tuple field's item as JSON: pairs stay lists of numbers, anything else (paths, names) a string."""
    return list(value) if isinstance(value, tuple) else str(value)


@dataclass
class RunStart:
    """What a run sets up before its networks: the device (threads and seeds set), its random source for
    crops and styles, and its content files."""

    device: torch.device
    rng: random.Random
    content_files: list[Path]

    @classmethod
    def of(cls, cfg: RunConfig, rank: int = 0) -> RunStart:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        device = torch.device(cfg.device)
        warn_if_slow_bf16(device, cfg.precision)
        torch.manual_seed(cfg.seed + rank)
        return cls(device, random.Random(cfg.seed * 1000 + rank), images.list_images(cfg.content_dir, cfg.exclude))

    def crops(self, cfg: RunConfig, scene: int | None = None) -> torch.Tensor:
        """A batch of random content crops [B,3,c,c] on the device, of photos scaled for ``scene`` (default:
        ``cfg.scene_size``)."""
        batch = images.sample_crops(
            self.content_files,
            cfg.batch_size,
            cfg.crop_size,
            self.rng,
            cfg.content_dir,
            scene=cfg.scene_size if scene is None else scene,
        )
        return batch.to(self.device)
