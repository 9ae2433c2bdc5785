"""Adversarial examples by the fast gradient sign method: Goodfellow, Shlens & Szegedy (2015).

Along the sign of the gradient that lowers the predicted class's log-probability, find (by doubling,
then bisection) the smallest step that changes the predicted class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class AdversarialExample:
    image: torch.Tensor  # [1,3,H,W] in [0,1]
    epsilon: float  # the step, in [0,1] pixel units (x255 for 8-bit levels)
    original: int
    original_probability: float
    adversarial: int
    adversarial_probability: float  # of the new class, on the adversarial image
    original_probability_after: float  # of the old class, on the adversarial image

    def difference(self, source: torch.Tensor) -> torch.Tensor:
        """The perturbation amplified to fill [0,1] (grey = no change)."""
        return (0.5 + 0.5 * (self.image - source) / max(self.epsilon, 1e-12)).clamp(0, 1)


def _predict(model: nn.Module, image: torch.Tensor) -> tuple[int, torch.Tensor]:
    with torch.no_grad():
        probs = torch.softmax(model(image), dim=1)[0]
    return int(probs.argmax()), probs


def smallest_flip(
    model: nn.Module, inputs: torch.Tensor, max_epsilon: float = 0.1, bisections: int = 12
) -> AdversarialExample:
    """The FGSM image with the smallest step that flips the top-1 class of ``inputs`` [1,3,H,W]."""
    original, probs = _predict(model, inputs)
    x = inputs.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(torch.log_softmax(model(x), dim=1)[0, original], x)
    direction = -grad.sign()

    def step(eps: float) -> torch.Tensor:
        return (inputs + eps * direction).clamp(0, 1)

    low, high = 0.0, 0.5 / 255
    while _predict(model, step(high))[0] == original:
        low, high = high, 2 * high
        if high > max_epsilon:
            raise ValueError(f"no step up to {max_epsilon:.3g} flips the class; raise max_epsilon")
    for _ in range(bisections):
        mid = (low + high) / 2
        low, high = (low, mid) if _predict(model, step(mid))[0] != original else (mid, high)
    image = step(high)
    new, after = _predict(model, image)
    return AdversarialExample(
        image, high, original, float(probs[original]), new, float(after[new]), float(after[original])
    )
