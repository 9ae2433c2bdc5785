"""Feature inversion: Mahendran & Vedaldi, Understanding Deep Image Representations by Inverting Them (2015).

Find an image whose features at one layer match a photo's, under a total-variation prior. Deeper layers
keep less of the picture: colours and exact positions go first, object parts stay longest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from training.features import VGGFeatures, load_vgg
from training.images import load_image
from training.optimize.engine import Objective, ObjectiveAt, OptimConfig, OptimResult, ensure_fits, optimize, resize
from training.optimize.gatys import check_layers, noise_like, output_size

INVERT_TAPS = ("relu2_1", "relu3_1", "relu4_1", "relu5_1")


@dataclass(frozen=True)
class InvertConfig:
    """One inversion per layer of one image."""

    image: Path
    size: int = 256  # shorter side
    layers: tuple[str, ...] = INVERT_TAPS
    vgg_weights: Path | None = None

    def __post_init__(self) -> None:
        check_layers(self.layers, self.size)


def feature_objective(vgg: VGGFeatures, photo: torch.Tensor, layer: str) -> ObjectiveAt:
    """Relative feature error ||F(x) - F(photo)||^2 / ||F(photo)||^2 at one layer, per octave size."""

    def at(size: tuple[int, int]) -> Objective:
        with torch.no_grad():
            target = vgg(resize(photo, size))[layer]
        scale = float(torch.mean(target**2)) + 1e-12
        return lambda image: {"features": torch.mean((vgg(image)[layer] - target) ** 2) / scale}

    return at


def invert(
    cfg: InvertConfig,
    engine: OptimConfig,
    vgg: VGGFeatures | None = None,
    on_result: Callable[[str, OptimResult], None] | None = None,
) -> tuple[torch.Tensor, list[OptimResult]]:
    """The photo, and one reconstruction per layer (each from the same noise; TV weight from ``engine``).

    ``on_result(layer, result)`` is called as each layer finishes, so a caller can save it at once.
    """
    # a network cut after each layer: inverting relu2_1 costs a fraction of a full VGG19 pass
    nets = {layer: (vgg or load_vgg((layer,), cfg.vgg_weights)).to(engine.device) for layer in cfg.layers}
    ensure_fits(max(nets.values(), key=lambda net: len(net.names)), output_size(cfg.image, cfg.size), engine.device)
    photo = load_image(cfg.image, cfg.size).to(engine.device)
    init = noise_like(photo, engine.seed)
    results = []
    for layer in cfg.layers:
        results.append(optimize(feature_objective(nets[layer], photo, layer), init, engine.for_run(layer)))
        if on_result:
            on_result(layer, results[-1])
    return photo.cpu(), results
