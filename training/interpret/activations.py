"""Activation maps: every channel of one layer's output for one image, as a grid of grayscale maps."""

from __future__ import annotations

import torch
from PIL import Image
from torch import nn

from training.images import grid, to_image
from training.interpret.hooks import capture


def attribute(model: nn.Module, inputs: torch.Tensor, layer: str) -> torch.Tensor:
    """The named layer's output for ``inputs`` [1,3,H,W]: [C,h,w]."""
    return capture(model, [layer], inputs)[layer][0].detach().cpu()


def grid_image(maps: torch.Tensor, channels: int = 32, cell: int = 96) -> Image.Image:
    """The first ``channels`` maps of [C,h,w], each scaled to its own max (dark = 0, white = max)."""
    tiles = []
    for m in maps[:channels]:
        tile = (m.clamp(min=0) / (m.max().clamp(min=1e-12))).expand(1, 3, -1, -1)
        picture = to_image(tile)
        tiles.append(picture.resize((cell, round(cell * picture.height / picture.width)), Image.Resampling.NEAREST))
    cols = 8
    return grid([tiles[i : i + cols] for i in range(0, len(tiles), cols)], cell=cell, pad=2)
