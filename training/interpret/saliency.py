"""Gradient saliency: Simonyan, Vedaldi & Zisserman, Deep Inside Convolutional Networks (2014).

The gradient of the target class score (the logit, before softmax) with respect to the input pixels.
"""

from __future__ import annotations

import torch
from torch import nn


def attribute(model: nn.Module, inputs: torch.Tensor, target: int) -> torch.Tensor:
    """d score[target] / d inputs, the shape of ``inputs`` ([B,3,H,W])."""
    x = inputs.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        scores = model(x)
        (grad,) = torch.autograd.grad(scores[:, target].sum(), x)
    return grad


def to_map(attribution: torch.Tensor) -> torch.Tensor:
    """[B,3,H,W] -> [B,H,W]: largest absolute value over the colour channels (the paper's choice)."""
    return attribution.abs().amax(dim=1)
