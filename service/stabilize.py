"""Temporal stabilization of per-frame stylization: blend in the flow-warped previous output.

After Ruder, Dosovitskiy and Brox, "Artistic style transfer for videos" (GCPR 2016), applied as a
post-process: where the input's optical flow is consistent (not occluded, not leaving the image),
the new output is pulled toward the previous output warped onto the current frame; elsewhere the
fresh stylization stands. Memory decays geometrically, so a few frames of overlap rebuild the state
(the Ray engine relies on that at chunk borders).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from service.flow import FlowEstimator, Preset, warp


@dataclass(frozen=True)
class StabilizeOptions:
    """``blend``: weight of the warped previous output on consistent pixels (0 = off)."""

    blend: float = 0.8
    preset: Preset = "fast"
    feather: int = 5  # px of Gaussian softening on the mask's edges, so occlusions leave no seams

    def __post_init__(self) -> None:
        if not 0.0 <= self.blend < 1.0:
            raise ValueError(f"stabilization blend must be in [0, 1), got {self.blend}")
        if self.feather < 0:
            raise ValueError(f"feather must be >= 0, got {self.feather}")


class Stabilizer:
    """Feed frames in order; ``step`` returns the stabilized output of each. One per sequence."""

    def __init__(self, options: StabilizeOptions) -> None:
        self.options = options
        self._flow = FlowEstimator(options.preset)
        self._previous_input: np.ndarray | None = None
        self._previous_output: np.ndarray | None = None

    def step(self, input_rgb: np.ndarray, stylized_rgb: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 input and its stylization -> stabilized HxWx3 uint8."""
        stylized = stylized_rgb.astype(np.float32)
        previous = self._previous_output
        if previous is None or self._previous_input is None or previous.shape != stylized.shape:
            output: np.ndarray = stylized
        else:
            pair = self._flow.pair(self._previous_input, input_rgb)
            mask = pair.valid.astype(np.float32)
            if self.options.feather:
                size = 2 * self.options.feather + 1
                mask = cv2.GaussianBlur(mask, (size, size), 0) * mask
            weight = (self.options.blend * mask)[..., None]
            output = stylized + weight * (warp(previous, pair.backward) - stylized)
        self._previous_input = input_rgb
        self._previous_output = output
        return np.clip(output + 0.5, 0, 255).astype(np.uint8)
