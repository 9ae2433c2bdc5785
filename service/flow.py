"""Dense optical flow between input frames (OpenCV DIS), warping, and forward-backward consistency.

Shared by the flicker metric (``service/flicker.py``) and temporal stabilization
(``service/stabilize.py``), following ../shared/QUALITY-METRIC.md: warp(X) remaps frame t-1 onto
frame t's grid with the backward flow t -> t-1; a pixel is valid where the backward flow and the
warped forward flow cancel out (Sundaram et al., ECCV 2010) and its source lies inside the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

Preset = Literal["ultrafast", "fast", "medium"]
_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


@dataclass(frozen=True)
class FlowPair:
    """Backward flow (t -> t-1) and the consistency mask on frame t's grid, both HxW."""

    backward: np.ndarray  # HxWx2 float32, pixels
    valid: np.ndarray  # HxW bool


class FlowEstimator:
    """DIS flow between consecutive RGB frames; one instance per sequence (not thread-safe)."""

    def __init__(self, preset: Preset = "medium") -> None:
        if preset not in _PRESETS:
            raise ValueError(f"flow preset must be one of {sorted(_PRESETS)}, got {preset!r}")
        self._dis = cv2.DISOpticalFlow.create(_PRESETS[preset])

    def pair(self, previous_rgb: np.ndarray, current_rgb: np.ndarray) -> FlowPair:
        prev_gray = cv2.cvtColor(previous_rgb, cv2.COLOR_RGB2GRAY)
        gray = cv2.cvtColor(current_rgb, cv2.COLOR_RGB2GRAY)
        backward = self._dis.calc(gray, prev_gray, None)  # type: ignore[call-overload]
        forward = self._dis.calc(prev_gray, gray, None)  # type: ignore[call-overload]
        return FlowPair(backward, consistent(backward, forward))


def source_grid(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel of frame t comes from in frame t-1 (x and y maps for cv2.remap)."""
    height, width = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return xs + flow[..., 0], ys + flow[..., 1]


def warp(image: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Remap frame t-1 (HxW or HxWxC) onto frame t's grid with the backward flow."""
    map_x, map_y = source_grid(backward)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def consistent(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """|w + warp(f_fw)| <= 0.01 (|w|^2 + |warp(f_fw)|^2) + 0.5 px, with the source inside the image."""
    height, width = backward.shape[:2]
    forward_at_source = warp(forward, backward)
    round_trip = np.sum((backward + forward_at_source) ** 2, axis=2)
    magnitudes = np.sum(backward**2, axis=2) + np.sum(forward_at_source**2, axis=2)
    agree = np.sqrt(round_trip) <= 0.01 * magnitudes + 0.5
    map_x, map_y = source_grid(backward)
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    return agree & inside
