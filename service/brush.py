"""Brush size: stroke scale without blur. Stylize a smaller copy, then upsample it guided by the camera frame.

A feed-forward network paints strokes of a fixed size in pixels, so stylizing the frame at 1/b of its size
makes them b times larger on screen. Plain upsampling would also blur the picture by b; instead the small
result is brought back with the fast guided filter (He, Sun & Tang, "Guided Image Filtering", ECCV 2010 /
TPAMI 2013; He & Sun, "Fast Guided Filter", 2015): in each small window the output is a linear function of
the frame's luminance, fitted at the small size and applied at full size, so the frame's edges stay sharp
while colours and strokes come from the stylized copy. A brush below 1 stylizes a larger copy (finer strokes)
and shrinks it with area averaging. Numpy and OpenCV only.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from service.errors import BadRequest

BRUSH_MIN, BRUSH_MAX = 0.5, 4.0
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def check_brush(value: object) -> float:
    """A number in [BRUSH_MIN, BRUSH_MAX]: 1 = the strokes the network was trained with, 2 = twice as large."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"brush must be a number in [{BRUSH_MIN}, {BRUSH_MAX}], got {value!r}")
    if not BRUSH_MIN <= value <= BRUSH_MAX:
        raise BadRequest(f"brush must be in [{BRUSH_MIN}, {BRUSH_MAX}], got {value}")
    return float(value)


def brush_size(height: int, width: int, brush: float) -> tuple[int, int]:
    """The (height, width) a frame is stylized at for ``brush``: the frame's size over the brush."""
    return max(8, round(height / brush)), max(8, round(width / brush))


def box(x: np.ndarray, radius: int) -> np.ndarray:
    return cv2.blur(x, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)


def guided_upsample(
    frame: np.ndarray, small_frame: np.ndarray, small_out: np.ndarray, radius: int = 1, eps: float = 1e-4
) -> np.ndarray:
    """Bring ``small_out`` (the stylized ``small_frame``) to ``frame``'s size, edges guided by ``frame``.

    ``frame`` [H,W,3], ``small_frame`` and ``small_out`` [h,w,3], all float32 in [0,1] -> [H,W,3] float32.
    ``eps`` sets how much of the frame's local contrast carries over (smaller: more).
    """
    guide = small_frame @ LUMA
    mean_i = box(guide, radius)[..., None]
    mean_p = box(small_out, radius)
    cov = box(guide[..., None] * small_out, radius) - mean_i * mean_p
    var = box(guide * guide, radius)[..., None] - mean_i * mean_i
    a = cov / (var + eps)
    b = mean_p - a * mean_i
    height, width = frame.shape[:2]
    big_a = cv2.resize(box(a, radius), (width, height), interpolation=cv2.INTER_LINEAR)
    big_b = cv2.resize(box(b, radius), (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(big_a * (frame @ LUMA)[..., None] + big_b, 0.0, 1.0)


def shrink(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-average (or bilinear, when growing) an [h,w,3] image to [height,width,3]."""
    grow = height > image.shape[0]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR if grow else cv2.INTER_AREA)
