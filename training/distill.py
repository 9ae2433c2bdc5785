"""Distil a trained style network into a cheaper architecture (Hinton, Vinyals & Dean 2015).

The student learns every style and blend of the teacher by matching its output: an L1 pixel term
plus a VGG19 feature term (relative squared error at one tap, relu2_2 by default, which keeps the
brush texture sharp where pixels alone would average it out). No Gram or dream losses: the teacher
already carries the styles, so a step costs the two networks and one shallow VGG pass, a few times
less than a training step, and the student inherits what hours of training put into the teacher.

Weights whose names and shapes agree are copied from the teacher first (the encoder, the residual
blocks, every per-style scale/shift of the norms), so the student starts close. Items take a one-hot
style or, with ``blend_fraction``, a random mix of two styles, so blends follow the teacher too.
The result is an ordinary checkpoint: export it, or keep training it with ``train --resume-from``.
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from training import images
from training.checkpoint import CheckpointError, build_from_checkpoint, copy_matching, load_checkpoint, save_checkpoint
from training.features import layer_names, load_vgg
from training.loop import (
    LoopPlan,
    autocast_for,
    check_precision,
    optimizer_groups,
    run_steps,
    set_rates,
    warn_if_slow_bf16,
)
from training.networks import StyleNet, count_parameters, tier_config

log = logging.getLogger(__name__)
LOG_COLUMNS = ("pixel", "feature", "total")


@dataclass(frozen=True)
class DistillConfig:
    """Everything a distillation run needs; built by the CLI, stored in the student's checkpoint."""

    teacher: Path
    content_dir: Path
    out_dir: Path
    tier: str = "realtime"
    steps: int = 3000
    batch_size: int = 8
    crop_size: int = 128
    lr: float = 2e-3
    norm_lr_scale: float = 10.0
    pixel_weight: float = 1.0  # mean absolute RGB difference to the teacher
    feature_weight: float = 0.5  # relative squared VGG19 feature difference at feature_tap
    feature_tap: str = "relu2_2"
    blend_fraction: float = 0.3  # items given a random two-style mix instead of one style
    exclude: tuple[str, ...] = ()
    checkpoint_every: int = 100
    preview_every: int = 250
    seed: int = 0
    device: str = "cpu"
    threads: int = 0
    vgg_weights: Path | None = None
    resume: bool = False
    precision: str = "fp32"  # training.loop.PRECISIONS
    preview_images: tuple[Path, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.crop_size < 16:
            raise ValueError("steps and batch size must be >= 1, crop size >= 16")
        if min(self.pixel_weight, self.feature_weight) < 0 or self.pixel_weight + self.feature_weight == 0:
            raise ValueError("pixel and feature weights must be non-negative and not both zero")
        if not 0 <= self.blend_fraction <= 1:
            raise ValueError("blend fraction must be in [0, 1]")
        check_precision(self.precision)
        relus = [n for n in layer_names() if n.startswith("relu")]
        if self.feature_tap not in relus:
            raise ValueError(f"unknown feature layer {self.feature_tap!r}; choose from {', '.join(relus)}")

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if isinstance(v, tuple) else v)
                for k, v in asdict(self).items()}


class Distiller:
    """Owns teacher, student, the shallow VGG, the optimizer and the data of one distillation run."""

    def __init__(self, cfg: DistillConfig) -> None:
        self.cfg = cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = torch.device(cfg.device)
        warn_if_slow_bf16(self.device, cfg.precision)
        torch.manual_seed(cfg.seed)
        self.rng = random.Random(cfg.seed)
        self.content_files = images.list_images(cfg.content_dir, cfg.exclude)
        teacher_ckpt = load_checkpoint(cfg.teacher)
        teacher, self.styles = build_from_checkpoint(teacher_ckpt)
        self.teacher = teacher.to(self.device).eval().requires_grad_(False)
        self.teacher_config = teacher_ckpt.get("train_config", {})
        self.teacher_step = int(teacher_ckpt.get("step", 0))
        own = cfg.out_dir / "checkpoint.pt"
        self.step = 0
        optimizer_state = None
        if cfg.resume and own.exists():
            ckpt = load_checkpoint(own)
            student, styles = build_from_checkpoint(ckpt)
            if styles != self.styles:
                raise CheckpointError(f"{own}: styles {styles} are not the teacher's {self.styles}")
            self.step, optimizer_state = int(ckpt["step"]), ckpt.get("optimizer")
        else:
            student = StyleNet(tier_config(cfg.tier, len(self.styles)))
            copied = copy_matching(student, teacher)
            log.info("student starts with %d of its %d tensors from the teacher", len(copied),
                     len(student.state_dict()))
        self.net = student.to(self.device).train()
        self.vgg = load_vgg((cfg.feature_tap,), cfg.vgg_weights).to(self.device).eval().requires_grad_(False)
        self.optimizer = torch.optim.Adam(optimizer_groups(self.net, cfg.lr, cfg.norm_lr_scale))
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state)
            set_rates(self.optimizer, cfg.lr, cfg.norm_lr_scale)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Random crops [B,3,c,c] and their style weights [B,S]: one-hot, or a mix of two styles."""
        cfg, n = self.cfg, len(self.styles)
        crops = images.sample_crops(self.content_files, cfg.batch_size, cfg.crop_size, self.rng, cfg.content_dir)
        weights = torch.zeros(len(crops), n)
        for row in weights:
            a = self.rng.randrange(n)
            if n > 1 and self.rng.random() < cfg.blend_fraction:
                b = self.rng.choice([i for i in range(n) if i != a])
                t = self.rng.random()
                row[a], row[b] = t, 1 - t
            else:
                row[a] = 1.0
        return crops.to(self.device), weights.to(self.device)

    def train_step(self) -> dict[str, float]:
        cfg = self.cfg
        content, weights = self.batch()
        with torch.no_grad():
            with autocast_for(self.device, cfg.precision, "net"):
                target = self.teacher(content, weights).float()
            with autocast_for(self.device, cfg.precision, "loss"):
                target_feat = self.vgg(target)[cfg.feature_tap].float()
        with autocast_for(self.device, cfg.precision, "net"):
            output = self.net(content, weights).float()
        pixel = (output - target).abs().mean()
        with autocast_for(self.device, cfg.precision, "loss"):
            feat = self.vgg(output)[cfg.feature_tap].float()
        error = (feat - target_feat) ** 2
        feature = error.mean() / target_feat.pow(2).mean().clamp_min(1e-8)  # relative: scale-free
        total = cfg.pixel_weight * pixel + cfg.feature_weight * feature
        if not torch.isfinite(total):
            raise FloatingPointError(f"loss became {float(total)} at step {self.step}; lower --lr")
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        self.step += 1
        return {"pixel": pixel.item(), "feature": feature.item(), "total": total.item()}

    def preview(self, path: Path) -> None:
        """One row per preview photo: the photo, then teacher and student side by side for each style."""
        if not self.cfg.preview_images:
            return
        self.net.eval()
        rows = []
        with torch.no_grad():
            for p in self.cfg.preview_images:
                photo = images.load_image(p, short_side=192, square=True).to(self.device)
                row = [images.to_image(photo)]
                for i in range(len(self.styles)):
                    w = torch.nn.functional.one_hot(torch.tensor([i]), len(self.styles)).float().to(self.device)
                    row.append(images.to_image(self.teacher.stylize_any_size(photo, w)))
                    row.append(images.to_image(self.net.stylize_any_size(photo, w)))
                rows.append(row)
        self.net.train()
        images.save_png(images.grid(rows, cell=128), path)

    def checkpoint_config(self) -> dict[str, Any]:
        """What the student's checkpoint records: this run, plus the teacher's styles and data so that
        export (thumbnails, dream gains) and further training see the same styles."""
        inherited = {k: self.teacher_config[k] for k in ("style_images", "dream_layers", "style_size", "vgg_weights")
                     if k in self.teacher_config}
        return self.cfg.to_json() | inherited | {
            "distilled_from": {"path": str(self.cfg.teacher), "config": self.teacher.config.to_json(),
                               "step": self.teacher_step, "training": self.teacher_config}}

    def run(self) -> dict[str, float]:
        cfg = self.cfg
        log.info("distilling %s (%d parameters) into %s (%d parameters), styles %s, %d content images, "
                 "from step %d", cfg.teacher, count_parameters(self.teacher), cfg.tier, count_parameters(self.net),
                 self.styles, len(self.content_files), self.step)
        record = _Recorded(self.checkpoint_config())
        loop = LoopPlan(out_dir=cfg.out_dir, steps=cfg.steps, columns=LOG_COLUMNS, shown=("pixel", "feature"),
                        desc=f"distill {cfg.tier}", checkpoint_every=cfg.checkpoint_every,
                        preview_every=cfg.preview_every)
        return run_steps(loop, self, lambda ema: save_checkpoint(
            cfg.out_dir / "checkpoint.pt", self.net, self.styles, self.step, record, self.optimizer, ema))


@dataclass(frozen=True)
class _Recorded:
    """A fixed training record for :func:`save_checkpoint` (anything with ``to_json``)."""

    body: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return self.body
