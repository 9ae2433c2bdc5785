"""Dense optical flow between input frames (OpenCV DIS), warping, and forward-backward consistency.

Shared by the flicker metric (``service/video/flicker.py``) and temporal stabilization
(``service/stabilize.py``), following ../shared/QUALITY-METRIC.md: warp(X) remaps frame t-1 onto
frame t's grid with the backward flow t -> t-1; a pixel is valid where the backward flow and the
warped forward flow cancel out (Sundaram et al., ECCV 2010) and its source lies inside the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
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

    def backward(self, grey: np.ndarray, previous_grey: np.ndarray) -> np.ndarray:
        """Flow t -> t-1 (HxWx2 float32, pixels) between two uint8 grey frames."""
        return self._dis.calc(grey, previous_grey, None)  # type: ignore[call-overload,no-any-return]

    def pair(self, previous_rgb: np.ndarray, current_rgb: np.ndarray) -> FlowPair:
        prev_gray = cv2.cvtColor(previous_rgb, cv2.COLOR_RGB2GRAY)
        gray = cv2.cvtColor(current_rgb, cv2.COLOR_RGB2GRAY)
        backward = self._dis.calc(gray, prev_gray, None)  # type: ignore[call-overload]
        forward = self._dis.calc(prev_gray, gray, None)  # type: ignore[call-overload]
        return FlowPair(backward, consistent(backward, forward))


@lru_cache(maxsize=8)
def _pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    xs.flags.writeable = ys.flags.writeable = False
    return xs, ys


def source_grid(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel of frame t comes from in frame t-1 (x and y maps for cv2.remap)."""
    xs, ys = _pixel_grid(*flow.shape[:2])
    return xs + flow[..., 0], ys + flow[..., 1]


def resize_flow(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    """A flow field computed on a smaller grid, resampled to HxW with its vectors scaled to match."""
    small_h, small_w = flow.shape[:2]
    out = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= width / small_w
    out[..., 1] *= height / small_h
    return out


def upscaled_source_maps(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    """cv2.remap maps (HxWx2) for an HxW image from a flow field computed on a smaller grid.

    The source position is linear in the pixel position, so resizing the small grid's source map
    (in full-resolution pixel units, pixel centres aligned) gives the same maps as resizing the flow
    and adding the full-resolution grid, with one full-size pass instead of four.
    """
    small_h, small_w = flow.shape[:2]
    sx, sy = width / small_w, height / small_h
    xs, ys = _pixel_grid(small_h, small_w)
    small = np.empty((small_h, small_w, 2), np.float32)
    small[..., 0] = (xs + flow[..., 0] + 0.5) * sx - 0.5
    small[..., 1] = (ys + flow[..., 1] + 0.5) * sy - 0.5
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def warp(image: np.ndarray, backward: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Remap frame t-1 (HxW or HxWxC) onto frame t's grid with the backward flow (bilinear: the metric's
    warp; the stabilizer's memory asks for bicubic, see ``service/stabilize.py``)."""
    map_x, map_y = source_grid(backward)
    return cv2.remap(image, map_x, map_y, interpolation, borderMode=cv2.BORDER_REPLICATE)


def consistent(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """|w + warp(f_fw)| <= 0.01 (|w|^2 + |warp(f_fw)|^2) + 0.5 px, with the source inside the image."""
    height, width = backward.shape[:2]
    map_x, map_y = source_grid(backward)
    forward_at_source = cv2.remap(forward, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    total = backward + forward_at_source
    round_trip = cv2.magnitude(total[..., 0], total[..., 1])
    magnitudes = np.square(cv2.magnitude(backward[..., 0], backward[..., 1])) + np.square(
        cv2.magnitude(forward_at_source[..., 0], forward_at_source[..., 1])
    )
    agree = round_trip <= 0.01 * magnitudes + 0.5
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    return agree & inside
