"""Style transfer by optimisation: Gatys, Ecker & Bethge, Image Style Transfer Using CNNs (2016).

The objective on top of the shared engine (training/optimize/engine.py): content loss at the content layers,
style loss against a blend of several styles' Gram matrices, and optionally a DeepDream term.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from training.features import CONTENT_TAP, STYLE_TAPS, VGGFeatures, layer_names, load_vgg
from training.images import load_image, picture_size
from training.losses import activation_energy, content_loss, gram, style_loss
from training.optimize import colour
from training.optimize.engine import Objective, OptimConfig, OptimResult, ensure_fits, optimize, resize

log = logging.getLogger(__name__)
INITS = ("content", "noise")
COLOUR_MODES = ("none", "luminance", "match")


def check_layers(layers: Sequence[str], size: int | None = None) -> None:
    """Refuse unknown VGG19 layer names (listing the valid ones), no layer at all, and a picture under 32 px."""
    if size is not None and size < 32:
        raise ValueError("size must be >= 32 px")
    if not layers:
        raise ValueError("give at least one layer")
    valid = layer_names("vgg19")
    unknown = [name for name in layers if name not in valid]
    if unknown:
        raise ValueError(f"unknown layer {', '.join(unknown)}; valid layers: {', '.join(valid)}")


def output_size(path: Path, short_side: int) -> tuple[int, int]:
    """(h, w) a picture will have once its shorter side is ``short_side`` (read from the header)."""
    w, h = picture_size(path)
    scale = short_side / min(w, h)
    return max(1, round(h * scale)), max(1, round(w * scale))


def noise_like(image: torch.Tensor, seed: int) -> torch.Tensor:
    """Uniform noise in [0,1] with ``image``'s shape, reproducible from the seed."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(image.shape, generator=gen).to(image.device)


@torch.no_grad()
def blended_grams(
    vgg: VGGFeatures, styles: Sequence[torch.Tensor], weights: Sequence[float], layers: Sequence[str]
) -> dict[str, torch.Tensor]:
    """Weighted sum of the styles' Gram matrices at each layer: the target of a style blend."""
    targets: dict[str, torch.Tensor] = {}
    for style, weight in zip(styles, weights, strict=True):
        feats = vgg(style)
        for layer in layers:
            targets[layer] = targets.get(layer, 0) + weight * gram(feats[layer])
    return targets


def dream_term(feats: Mapping[str, torch.Tensor], layers: Sequence[str]) -> torch.Tensor:
    """Mean squared activation summed over layers: what DeepDream maximises."""
    return torch.stack([activation_energy(feats[layer]).mean() for layer in layers]).sum()


@dataclass(frozen=True)
class GatysConfig:
    """One style transfer: built at the entry point."""

    content: Path
    styles: tuple[Path, ...]
    blend: tuple[float, ...] = ()  # one weight per style; empty: equal weights
    size: int = 512  # shorter side of the result
    square: bool = False  # centre-crop the content to size x size (as the quality metric does)
    style_scale: float = 1.0  # style image's shorter side relative to the result's: the brush size
    content_weight: float = 1.0
    style_weight: float = 1e-4
    content_layers: tuple[str, ...] = (CONTENT_TAP,)
    style_layers: tuple[str, ...] = STYLE_TAPS
    init: str = "content"
    colour: str = "none"
    dream_layers: tuple[str, ...] = ()
    dream_weight: float = 0.0
    vgg_weights: Path | None = None

    def __post_init__(self) -> None:
        if not self.styles:
            raise ValueError("give at least one style image")
        if self.blend and (len(self.blend) != len(self.styles) or min(self.blend) < 0 or sum(self.blend) <= 0):
            raise ValueError(f"give one non-negative blend weight per style ({len(self.styles)}), not all zero")
        if self.size < 32 or self.style_scale <= 0:
            raise ValueError("size must be >= 32 px and the style scale > 0")
        if min(self.content_weight, self.style_weight, self.dream_weight) < 0:
            raise ValueError("loss weights must be non-negative")
        if self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}; choose from {', '.join(INITS)}")
        if self.colour not in COLOUR_MODES:
            raise ValueError(f"unknown colour mode {self.colour!r}; choose from {', '.join(COLOUR_MODES)}")
        if not self.style_layers:
            raise ValueError("give at least one style layer")
        check_layers((*self.content_layers, *self.style_layers, *self.dream_layers))

    def blend_weights(self) -> tuple[float, ...]:
        weights = self.blend or (1.0,) * len(self.styles)
        return tuple(w / sum(weights) for w in weights)

    def taps(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.content_layers, *self.style_layers, *self.dream_layers)))


@dataclass
class GatysResult:
    image: torch.Tensor  # [1,3,H,W] in [0,1]
    content: torch.Tensor  # the content photo at the result's size
    styles: list[torch.Tensor]  # the style images as the loss saw them (after colour preservation)
    optim: OptimResult


class GatysObjective:
    """Builds the per-octave objective: targets are recomputed at each octave's size."""

    def __init__(self, vgg: VGGFeatures, cfg: GatysConfig, content: torch.Tensor, styles: list[torch.Tensor]) -> None:
        self.vgg, self.cfg, self.content, self.styles = vgg, cfg, content, styles

    def __call__(self, size: tuple[int, int]) -> Objective:
        cfg, vgg = self.cfg, self.vgg
        factor = min(size) / min(self.content.shape[-2:])
        styles = [
            resize(s, (max(16, round(s.shape[-2] * factor)), max(16, round(s.shape[-1] * factor)))) for s in self.styles
        ]
        grams = blended_grams(vgg, styles, cfg.blend_weights(), cfg.style_layers)
        with torch.no_grad():
            content_feats = vgg(resize(self.content, size))

        def objective(image: torch.Tensor) -> dict[str, torch.Tensor]:
            feats = vgg(image)
            terms = {"style": cfg.style_weight * style_loss(feats, grams, cfg.style_layers)}
            if cfg.content_weight:
                terms["content"] = (
                    cfg.content_weight
                    * torch.stack([content_loss(feats[la], content_feats[la]) for la in cfg.content_layers]).sum()
                )
            if cfg.dream_layers and cfg.dream_weight:
                terms["dream"] = -cfg.dream_weight * dream_term(feats, cfg.dream_layers)
            return terms

        return objective


def stylize(cfg: GatysConfig, engine: OptimConfig, vgg: VGGFeatures | None = None) -> GatysResult:
    """Optimise an image to have ``cfg.content``'s content and the blended styles' style."""
    vgg = (vgg or load_vgg(cfg.taps(), cfg.vgg_weights)).to(engine.device)
    size = (cfg.size, cfg.size) if cfg.square else output_size(cfg.content, cfg.size)
    ensure_fits(vgg, size, engine.device)
    content = load_image(cfg.content, cfg.size, square=cfg.square).to(engine.device)
    style_side = max(16, round(cfg.size * cfg.style_scale))
    styles = [load_image(p, style_side).to(engine.device) for p in cfg.styles]
    seen_content = content
    if cfg.colour == "luminance":
        seen_content = colour.grey(colour.luminance(content))
        styles = [colour.luminance_like(s, content) for s in styles]
    elif cfg.colour == "match":
        styles = [colour.match_colours(s, content) for s in styles]
    init = seen_content if cfg.init == "content" else noise_like(content, engine.seed)
    result = optimize(GatysObjective(vgg, cfg, seen_content, styles), init, engine)
    image = result.image
    if cfg.colour == "luminance":
        image = colour.recolour(image, content.cpu())
    return GatysResult(image=image, content=content.cpu(), styles=[s.cpu() for s in styles], optim=result)
