"""Convolution filters as pictures: first-layer filters as RGB tiles, deeper filters as grayscale slices."""

from __future__ import annotations

import torch
from PIL import Image

from training.images import grid, to_image


def rgb_tiles(weight: torch.Tensor, scale: int = 16) -> Image.Image:
    """[O,3,k,k] first-layer weights -> one tile per filter, each stretched symmetrically around grey."""
    if weight.dim() != 4 or weight.shape[1] != 3:
        raise ValueError(f"expected first-layer weights [O,3,k,k], got {tuple(weight.shape)}")
    tiles = []
    for w in weight.detach().float().cpu():
        tile = 0.5 + 0.5 * w / (w.abs().max() + 1e-12)
        picture = to_image(tile[None])
        tiles.append(picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST))
    cols = 8 if len(tiles) <= 64 else 16
    return grid([tiles[i : i + cols] for i in range(0, len(tiles), cols)], cell=tiles[0].width, pad=2)


def gray_slices(weight: torch.Tensor, outputs: int = 16, inputs: int = 16, scale: int = 12) -> Image.Image:
    """[O,I,k,k] weights -> grid: a row per output filter, a column per input channel, grey = 0."""
    w = weight.detach().float().cpu()[:outputs, :inputs]
    rows = []
    for filt in w:
        limit = filt.abs().max() + 1e-12  # one scale per output filter so its slices compare
        row = []
        for kernel in filt:
            tile = (0.5 + 0.5 * kernel / limit).expand(1, 3, -1, -1)
            picture = to_image(tile)
            row.append(picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST))
        rows.append(row)
    return grid(rows, cell=rows[0][0].width, pad=1)
