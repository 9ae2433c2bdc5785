"""DeepDream: Mordvintsev, Olah & Tyka, Inceptionism: Going Deeper into Neural Networks (2015).

Gradient ascent on the squared activations of chosen layers, with jitter, normalised gradient steps
and octaves (only the added detail moves up an octave, so the photo stays sharp).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from training.features import VGGFeatures, load_vgg
from training.images import load_image
from training.optimize.engine import ObjectiveAt, OptimConfig, OptimResult, ensure_fits, optimize
from training.optimize.gatys import check_layers, dream_term, noise_like, output_size

DREAM_TAPS = ("relu4_2",)


@dataclass(frozen=True)
class DreamConfig:
    """What to dream and from what (a photo, or grey noise when ``image`` is None)."""

    image: Path | None
    layers: tuple[str, ...] = DREAM_TAPS
    size: int = 512  # shorter side (square from noise)
    vgg_weights: Path | None = None

    def __post_init__(self) -> None:
        check_layers(self.layers, self.size)


def dream_objective(vgg: VGGFeatures, layers: tuple[str, ...]) -> ObjectiveAt:
    """Minimise minus the layers' mean squared activation (the same at every octave)."""

    def objective(image: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"dream": -dream_term(vgg(image), layers)}

    return lambda size: objective


def grey_noise(size: int, seed: int) -> torch.Tensor:
    """Mid-grey with faint noise: where a dream from nothing starts."""
    return 0.5 + 0.1 * (noise_like(torch.empty(1, 3, size, size), seed) - 0.5)


def dream(cfg: DreamConfig, engine: OptimConfig, vgg: VGGFeatures | None = None) -> tuple[torch.Tensor, OptimResult]:
    """The starting image and the dream."""
    vgg = (vgg or load_vgg(cfg.layers, cfg.vgg_weights)).to(engine.device)
    size = output_size(cfg.image, cfg.size) if cfg.image else (cfg.size, cfg.size)
    ensure_fits(vgg, size, engine.device)
    start = load_image(cfg.image, cfg.size) if cfg.image else grey_noise(cfg.size, engine.seed)
    result = optimize(dream_objective(vgg, cfg.layers), start.to(engine.device), engine)
    return start, result
