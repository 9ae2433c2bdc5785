"""Texture synthesis by Gram matching: Gatys, Ecker & Bethge, Texture Synthesis Using CNNs (2015).

Starting from noise, match the texture's Gram matrices at a set of layers. Growing the set
(relu1_1; +relu2_1; ... +relu5_1) shows how deeper layers add larger structures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from training.features import STYLE_TAPS, VGGFeatures, load_vgg
from training.images import load_image
from training.losses import style_loss
from training.optimize.engine import Objective, ObjectiveAt, OptimConfig, OptimResult, ensure_fits, optimize, resize
from training.optimize.gatys import blended_grams, check_layers, noise_like


def growing(layers: Sequence[str]) -> list[tuple[str, ...]]:
    """(a,), (a, b), (a, b, c), ...: the lecture's growing layer sets."""
    return [tuple(layers[: k + 1]) for k in range(len(layers))]


@dataclass(frozen=True)
class TextureConfig:
    """A texture synthesis run: one result per layer set."""

    texture: Path
    size: int = 256  # the result is size x size
    source_size: int = 256  # the texture image's shorter side (the scale of its features)
    layer_sets: tuple[tuple[str, ...], ...] = tuple(growing(STYLE_TAPS))
    vgg_weights: Path | None = None

    def __post_init__(self) -> None:
        if self.size < 32 or self.source_size < 32:
            raise ValueError("size and source size must be >= 32 px")
        if not self.layer_sets or not all(self.layer_sets):
            raise ValueError("give at least one non-empty layer set")
        check_layers([layer for layers in self.layer_sets for layer in layers])


def gram_objective(vgg: VGGFeatures, texture: torch.Tensor, layers: tuple[str, ...], full_side: int) -> ObjectiveAt:
    """Objective factory matching ``texture``'s Grams; the texture shrinks with the octave."""

    def at(size: tuple[int, int]) -> Objective:
        factor = min(size) / full_side
        source = resize(
            texture, (max(16, round(texture.shape[-2] * factor)), max(16, round(texture.shape[-1] * factor)))
        )
        grams = blended_grams(vgg, [source], [1.0], layers)
        return lambda image: {"style": style_loss(vgg(image), grams, layers)}

    return at


def synthesize(
    cfg: TextureConfig,
    engine: OptimConfig,
    vgg: VGGFeatures | None = None,
    on_result: Callable[[str, OptimResult], None] | None = None,
) -> tuple[torch.Tensor, list[OptimResult]]:
    """The texture as the loss saw it, and one synthesis per layer set (each from the same noise).

    ``on_result(set_name, result)`` is called as each set finishes, so a caller can save it at once.
    """
    # a network cut after each set's deepest layer: shallow sets cost a fraction of a full VGG19 pass
    nets = {layers: (vgg or load_vgg(layers, cfg.vgg_weights)).to(engine.device) for layers in cfg.layer_sets}
    ensure_fits(max(nets.values(), key=lambda net: len(net.names)), (cfg.size, cfg.size), engine.device)
    texture = load_image(cfg.texture, cfg.source_size).to(engine.device)
    init = noise_like(torch.empty(1, 3, cfg.size, cfg.size), engine.seed)
    results = []
    for layers in cfg.layer_sets:
        name = set_name(layers)
        results.append(optimize(gram_objective(nets[layers], texture, layers, cfg.size), init, engine.for_run(name)))
        if on_result:
            on_result(name, results[-1])
    return texture.cpu(), results


def set_name(layers: Sequence[str]) -> str:
    return layers[0] if len(layers) == 1 else f"{layers[0]}-to-{layers[-1]}"
