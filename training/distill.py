"""Distil a trained style network into a cheaper architecture (Hinton, Vinyals & Dean 2015).

The student learns every style and blend of the teacher by matching its output: an L1 pixel term
plus a VGG19 feature term (relative squared error at one tap, relu2_2 by default, which keeps the
brush texture sharp where pixels alone would average it out). No Gram or dream losses: the teacher
already carries the styles, so a step costs the two networks and one shallow VGG pass, a few times
less than a training step, and the student inherits what hours of training put into the teacher.

Weights whose names and shapes agree are copied from the teacher first (the encoder, the residual
blocks, every per-style scale/shift of the norms), so the student starts close; ``init_from`` starts it
from another checkpoint instead (a student of this design trained before). Items take a one-hot style
or, with ``blend_fraction``, a random mix of two styles, so blends follow the teacher too.

Several teachers can teach one student: each style comes from the first teacher that has it (the
quality tier's paintings and a realtime checkpoint's dream styles, say); blends mix styles of one
teacher, and blends across teachers come from the shared convolutions as in any CIN network.
The result is an ordinary checkpoint: export it, or keep training it with ``train --resume-from``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from service.contract import DREAM_PREFIX
from training import images
from training.checkpoint import CheckpointError, build_from_checkpoint, copy_matching, load_checkpoint, save_checkpoint
from training.features import layer_names, load_vgg
from training.loop import autocast_for, optimizer_groups, run_steps, set_rates
from training.networks import StyleNet, count_parameters, tier_config
from training.run import RunConfig, RunStart

log = logging.getLogger(__name__)
LOG_COLUMNS = ("pixel", "feature", "total")


@dataclass(frozen=True, kw_only=True)
class DistillConfig(RunConfig):
    """Everything a distillation run needs: the shared run settings plus the teacher and the two losses;
    built by the CLI, stored in the student's checkpoint."""

    teachers: tuple[Path, ...]  # each style is taught by the first of these that has it
    pixel_weight: float = 1.0  # mean absolute RGB difference to the teacher
    feature_weight: float = 0.5  # relative squared VGG19 feature difference at feature_tap
    feature_tap: str = "relu2_2"
    blend_fraction: float = 0.3  # items given a random two-style mix instead of one style
    resume: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.teachers:
            raise ValueError("give at least one teacher checkpoint")
        if min(self.pixel_weight, self.feature_weight) < 0 or self.pixel_weight + self.feature_weight == 0:
            raise ValueError("pixel and feature weights must be non-negative and not both zero")
        if not 0 <= self.blend_fraction <= 1:
            raise ValueError("blend fraction must be in [0, 1]")
        relus = [n for n in layer_names() if n.startswith("relu")]
        if self.feature_tap not in relus:
            raise ValueError(f"unknown feature layer {self.feature_tap!r}; choose from {', '.join(relus)}")


@dataclass
class Teacher:
    """One trained network the student copies, and which of its styles it teaches."""

    path: Path
    net: StyleNet
    taught: list[int]  # its own index of each style it teaches
    ids: list[int]  # the student's index of each of those styles
    config: dict[str, Any]  # its checkpoint's training record
    step: int


def load_teachers(paths: tuple[Path, ...], device: torch.device) -> tuple[list[Teacher], list[str]]:
    """The teachers and the student's styles: every teacher's styles in order, each taught by the first
    teacher that has it (so a painting tier and a tier with dream styles can teach one student)."""
    styles: list[str] = []
    teachers = []
    for path in paths:
        ckpt = load_checkpoint(path)
        net, own = build_from_checkpoint(ckpt)
        taught = [i for i, name in enumerate(own) if name not in styles]
        if not taught:
            raise CheckpointError(f"{path}: each of its styles is taught by an earlier teacher")
        ids = list(range(len(styles), len(styles) + len(taught)))
        styles += [own[i] for i in taught]
        teachers.append(
            Teacher(
                path,
                net.to(device).eval().requires_grad_(False),
                taught,
                ids,
                ckpt.get("train_config", {}),
                int(ckpt.get("step", 0)),
            )
        )
    return teachers, styles


class Distiller:
    """Owns the teachers, the student, the shallow VGG, the optimizer and the data of one distillation run."""

    def __init__(self, cfg: DistillConfig) -> None:
        self.cfg = cfg
        self.start = RunStart.of(cfg)
        self.device, self.rng = self.start.device, self.start.rng
        self.teachers, self.styles = load_teachers(cfg.teachers, self.device)
        own = cfg.out_dir / "checkpoint.pt"
        self.step = 0
        optimizer_state = None
        if cfg.resume and own.exists():
            ckpt = load_checkpoint(own)
            student, styles = build_from_checkpoint(ckpt)
            if styles != self.styles:
                raise CheckpointError(f"{own}: styles {styles} are not the teachers' {self.styles}")
            self.step, optimizer_state = int(ckpt["step"]), ckpt.get("optimizer")
        else:
            student = StyleNet(tier_config(cfg.tier, len(self.styles)))
            source, source_name = self.teachers[0].net, "the (first) teacher"
            if cfg.init_from is not None:
                source, source_styles = build_from_checkpoint(load_checkpoint(cfg.init_from))
                if source_styles != self.styles:
                    raise CheckpointError(
                        f"{cfg.init_from}: styles {source_styles} are not the teachers' {self.styles}"
                    )
                source_name = str(cfg.init_from)
            copied = copy_matching(student, source)
            log.info(
                "student starts with %d of its %d tensors from %s", len(copied), len(student.state_dict()), source_name
            )
        self.net = student.to(self.device).train()
        self.vgg = load_vgg((cfg.feature_tap,), cfg.vgg_weights).to(self.device).eval().requires_grad_(False)
        self.optimizer = torch.optim.Adam(optimizer_groups(self.net, cfg.lr, cfg.norm_lr_scale))
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state)
            set_rates(self.optimizer, cfg.lr, cfg.norm_lr_scale)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Random crops [B,3,c,c] and their style weights [B,S]: one-hot, or a mix of two styles of one teacher."""
        cfg, n = self.cfg, len(self.styles)
        crops = self.start.crops(cfg)
        weights = torch.zeros(len(crops), n)
        for row in weights:
            a = self.rng.randrange(n)
            partners = [i for i in self._teacher_of(a).ids if i != a]
            if partners and self.rng.random() < cfg.blend_fraction:
                b = self.rng.choice(partners)
                t = self.rng.random()
                row[a], row[b] = t, 1 - t
            else:
                row[a] = 1.0
        return crops, weights.to(self.device)

    def _teacher_of(self, style: int) -> Teacher:
        return next(t for t in self.teachers if style in t.ids)

    def targets(self, content: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Each item painted by the teacher of its style(s), in that teacher's own style order."""
        target = torch.empty_like(content)
        owner = weights.argmax(dim=1)
        for teacher in self.teachers:
            mine = torch.isin(owner, torch.tensor(teacher.ids, device=owner.device))
            if mine.any():
                own = torch.zeros(int(mine.sum()), teacher.net.config.num_styles, device=weights.device)
                own[:, teacher.taught] = weights[mine][:, teacher.ids]
                with autocast_for(self.device, self.cfg.precision, "net"):
                    target[mine] = teacher.net(content[mine], own).float()
        return target

    def train_step(self) -> dict[str, float]:
        cfg = self.cfg
        content, weights = self.batch()
        with torch.no_grad():
            target = self.targets(content, weights)
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
                    row.append(images.to_image(self.targets(photo, w)))
                    row.append(images.to_image(self.net.stylize_any_size(photo, w)))
                rows.append(row)
        self.net.train()
        images.save_png(images.grid(rows, cell=128), path)

    def checkpoint_config(self) -> dict[str, Any]:
        """What the student's checkpoint records: this run, plus the teachers' styles and data so that export
        (thumbnails, dream gains) and further training see the same styles."""
        inherited: dict[str, Any] = {"style_images": [], "dream_layers": []}
        for teacher in self.teachers:
            taught = {self.styles[i] for i in teacher.ids}
            inherited["style_images"] += [p for p in teacher.config.get("style_images", []) if Path(p).stem in taught]
            inherited["dream_layers"] += [
                d for d in teacher.config.get("dream_layers", []) if DREAM_PREFIX + d in taught
            ]
            for key in ("style_size", "vgg_weights"):
                if key in teacher.config:
                    inherited.setdefault(key, teacher.config[key])
        return (
            self.cfg.to_json()
            | inherited
            | {
                "distilled_from": [
                    {
                        "path": str(t.path),
                        "config": t.net.config.to_json(),
                        "step": t.step,
                        "training": t.config,
                        "styles": [self.styles[i] for i in t.ids],
                    }
                    for t in self.teachers
                ]
            }
        )

    def run(self) -> dict[str, float]:
        cfg = self.cfg
        taught = "; ".join(
            f"{t.path} ({count_parameters(t.net)} parameters): {len(t.ids)} styles" for t in self.teachers
        )
        log.info(
            "distilling %s into %s (%d parameters), styles %s, %d content images, from step %d",
            taught,
            cfg.tier,
            count_parameters(self.net),
            self.styles,
            len(self.start.content_files),
            self.step,
        )
        record = _Recorded(self.checkpoint_config())
        loop = cfg.loop_plan(LOG_COLUMNS, ("pixel", "feature"), f"distill {cfg.tier}")
        return run_steps(
            loop,
            self,
            lambda ema: save_checkpoint(
                cfg.out_dir / "checkpoint.pt", self.net, self.styles, self.step, record, self.optimizer, ema
            ),
        )


@dataclass(frozen=True)
class _Recorded:
    """A fixed training record for :func:`save_checkpoint` (anything with ``to_json``)."""

    body: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return self.body
