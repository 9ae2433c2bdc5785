"""Perceptual losses as pure functions (Gatys et al. 2016; Johnson et al. 2016).

Definitions follow docs/quality-metric (shared QUALITY-METRIC.md): Gram normalised by C*H*W, style loss
scaled by 1e6 and summed over layers, content loss the mean squared feature difference.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

STYLE_SCALE = 1e6


def gram(features: torch.Tensor) -> torch.Tensor:
    """[B,C,H,W] -> [B,C,C], normalised by C*H*W."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def content_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared feature difference."""
    return torch.mean((output - target) ** 2)


def style_loss(output: Mapping[str, torch.Tensor], target_grams: Mapping[str, torch.Tensor],
               layers: Iterable[str]) -> torch.Tensor:
    """1e6 * sum over layers of mean((G_out - G_target)^2); targets [B,C,C] or [1,C,C] (broadcast)."""
    total = torch.zeros((), device=next(iter(output.values())).device)
    for layer in layers:
        total = total + torch.mean((gram(output[layer]) - target_grams[layer]) ** 2)
    return STYLE_SCALE * total


def per_item_style_loss(output: Mapping[str, torch.Tensor], target_grams: Mapping[str, torch.Tensor],
                        layers: Iterable[str]) -> torch.Tensor:
    """Like :func:`style_loss` but one value per batch item: [B]."""
    parts = [torch.mean((gram(output[layer]) - target_grams[layer]) ** 2, dim=(1, 2)) for layer in layers]
    return STYLE_SCALE * torch.stack(parts).sum(0)


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring pixels (smoothness prior)."""
    dh = image[..., 1:, :] - image[..., :-1, :]
    dw = image[..., :, 1:] - image[..., :, :-1]
    return torch.mean(dh**2) + torch.mean(dw**2)


def activation_energy(features: torch.Tensor) -> torch.Tensor:
    """What DeepDream maximises in one layer: the mean squared activation of each item, [B,C,H,W] -> [B]."""
    return features.pow(2).mean(dim=(1, 2, 3))


def log_activation_gain(output: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Per item log(energy(out) / energy(source)) of one layer: [B,C,H,W] x2 -> [B] (0: no gain)."""
    return torch.log(activation_energy(output) + 1e-8) - torch.log(activation_energy(source) + 1e-8)
