"""Occlusion sensitivity: Zeiler & Fergus, Visualizing and Understanding Convolutional Networks (2014).

Slide a grey patch over the image and record how much the target class probability drops; each
pixel gets the mean drop over the patch positions that covered it.
"""

from __future__ import annotations

import torch
from torch import nn


def _starts(size: int, patch: int, stride: int) -> list[int]:
    starts = list(range(0, max(size - patch, 0) + 1, stride))
    if starts[-1] + patch < size:  # cover the last rows/columns too
        starts.append(size - patch)
    return starts


@torch.no_grad()
def attribute(
    model: nn.Module,
    inputs: torch.Tensor,
    target: int,
    patch: int = 32,
    stride: int = 16,
    fill: float = 0.5,
    batch_size: int = 32,
) -> torch.Tensor:
    """Drop of softmax[target] when occluded, per pixel: [B,1,H,W] for ``inputs`` [B,3,H,W]."""
    if patch < 1 or stride < 1:
        raise ValueError("patch and stride must be >= 1")
    b, _, h, w = inputs.shape
    drop = torch.zeros(b, 1, h, w)
    count = torch.zeros(1, 1, h, w)
    windows = [(top, left) for top in _starts(h, patch, stride) for left in _starts(w, patch, stride)]
    for n in range(b):
        image = inputs[n : n + 1]
        base = float(torch.softmax(model(image), dim=1)[0, target])
        for first in range(0, len(windows), batch_size):
            chunk = windows[first : first + batch_size]
            batch = image.repeat(len(chunk), 1, 1, 1)
            for i, (top, left) in enumerate(chunk):
                batch[i, :, top : top + patch, left : left + patch] = fill
            probs = torch.softmax(model(batch), dim=1)[:, target].cpu()
            for (top, left), p in zip(chunk, probs, strict=True):
                drop[n, 0, top : top + patch, left : left + patch] += base - float(p)
                if n == 0:
                    count[0, 0, top : top + patch, left : left + patch] += 1
    return drop / count
