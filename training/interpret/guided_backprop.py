"""Guided backpropagation: Springenberg et al., Striving for Simplicity: The All Convolutional Net (2015).

Backpropagation in which every ReLU (and ReLU6) passes back only positive gradients, on top of its
usual mask of positive inputs. Done with backward hooks on the activation modules, removed in finally.
"""

from __future__ import annotations

import torch
from torch import nn

from training.interpret import saliency
from training.interpret.hooks import removing

ACTIVATIONS = (nn.ReLU, nn.ReLU6)


def _positive_only(
    _module: nn.Module, grad_input: tuple[torch.Tensor | None, ...], _grad_output: tuple[torch.Tensor | None, ...]
) -> tuple[torch.Tensor | None, ...]:
    return tuple(None if g is None else g.clamp(min=0) for g in grad_input)


def attribute(model: nn.Module, inputs: torch.Tensor, target: int) -> torch.Tensor:
    """Guided gradient of score[target] w.r.t. ``inputs`` ([B,3,H,W]); ReLUs must be modules, not inplace."""
    relus = [m for m in model.modules() if isinstance(m, ACTIVATIONS)]
    if not relus:
        raise ValueError("guided backprop needs nn.ReLU / nn.ReLU6 modules; this model has none")
    if any(getattr(m, "inplace", False) for m in relus):
        raise ValueError("guided backprop needs ReLUs with inplace=False")
    with removing([m.register_full_backward_hook(_positive_only) for m in relus]):
        return saliency.attribute(model, inputs, target)
