"""Class and channel visualization by gradient ascent (Simonyan et al. 2014; Yosinski et al. 2015).

Maximise a class score, or an inner channel's mean activation, over the pixels of an image that starts
near grey, on the shared engine (training/optimize/engine.py) with its regularizers: L2 towards grey, Gaussian
blur every few steps, random jitter and pixel clipping.
"""

from __future__ import annotations

import torch
from torch import nn

from training.interpret.hooks import recording
from training.optimize.engine import Objective, ObjectiveAt, OptimConfig, OptimResult, optimize

ENGINE = OptimConfig(
    iterations=(30, 30, 40),
    optimizer="adam",
    lr=0.05,
    l2_weight=5.0,
    jitter=16,
    blur_every=4,
    blur_sigma=1.5,
    clip=True,
    octaves=3,
    octave_scale=1.4,
    progress=False,
)
"""Settings that give recognisable pictures from EfficientNet-Lite0 at 224 px: coarse-to-fine octaves lay
out the object's shape first (single-scale ascent at the same cost gave high-frequency colour noise)."""


def split_iterations(total: int, octaves: int) -> tuple[int, ...]:
    """``total`` steps over the octaves, the finest getting the remainder: 100 over 3 -> (30, 30, 40)."""
    share = max(1, total * 3 // (3 * (octaves - 1) + 4))  # the finest octave weighs 4, each coarser one 3
    coarse = [share] * (octaves - 1)
    return (*coarse, max(1, total - sum(coarse)))


def class_objective(model: nn.Module, target: int) -> ObjectiveAt:
    """Minimise minus the target class's logit (the unnormalised score, as in the paper)."""

    def at(_size: tuple[int, int]) -> Objective:
        return lambda image: {"class": -model(image)[0, target]}

    return at


def channel_objective(model: nn.Module, layer: str, channel: int) -> ObjectiveAt:
    """Minimise minus the mean activation of one channel of a named layer."""

    def objective(image: torch.Tensor) -> dict[str, torch.Tensor]:
        with recording(model, [layer]) as outputs:
            model(image)
        return {"channel": -outputs[layer][0, channel].mean()}

    return lambda _size: objective


def visualize(objective_at: ObjectiveAt, size: int = 224, engine: OptimConfig = ENGINE) -> OptimResult:
    """Optimise a size x size image from grey plus a little noise."""
    gen = torch.Generator().manual_seed(engine.seed)
    init = (0.5 + 0.02 * torch.randn(1, 3, size, size, generator=gen)).clamp(0, 1)
    return optimize(objective_at, init, engine)
