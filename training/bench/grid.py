"""Grid score: how strongly a frame shows a 2- or 4-pixel mesh (../shared/QUALITY-METRIC.md, "Grid score").

A decoder that upsamples by 2 and is not balanced paints a pattern with a period of 2 or 4 pixels (Odena,
Dumoulin & Olah, "Deconvolution and Checkerboard Artifacts", Distill 2016). In the power spectrum that is a
spike at exactly N/2 or N/4 cycles, where photos and paintings are smooth. The score is the geometric mean,
over the 15 bins (fy, fx) in {0, H/4, H/2, 3H/4} x {0, W/4, W/2, 3W/4} less (0, 0), of the bin's power over
the median of its 5x5 neighbourhood: about 1 means no spike, 10 a tenfold one. Numpy only.
"""

from __future__ import annotations

import numpy as np

LUMA = np.array([0.299, 0.587, 0.114])


def spectrum(rgb: np.ndarray) -> np.ndarray:
    """Power spectrum of a frame's windowed luminance: [H,W,3] in [0,1] (or uint8) -> [H,W]."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an [H,W,3] RGB frame, got shape {rgb.shape}")
    img = rgb.astype(np.float64) / (255.0 if rgb.dtype == np.uint8 else 1.0)
    y = img @ LUMA
    y -= y.mean()
    h, w = y.shape
    y *= np.hanning(h)[:, None] * np.hanning(w)[None, :]
    return np.abs(np.fft.fft2(y)) ** 2


def grid_bins(h: int, w: int) -> list[tuple[int, int]]:
    """The 15 (fy, fx) bins at multiples of a quarter of each side, (0, 0) left out."""
    if h % 4 or w % 4 or h < 8 or w < 8:
        raise ValueError(f"frame sides must be multiples of 4 and at least 8, got {w}x{h}")
    return [(fy, fx) for fy in (0, h // 4, h // 2, 3 * h // 4) for fx in (0, w // 4, w // 2, 3 * w // 4)
            if (fy, fx) != (0, 0)]


def bin_ratios(power: np.ndarray) -> np.ndarray:
    """Each grid bin's power over the median of its 5x5 neighbourhood (bin excluded, wrapping): [15]."""
    h, w = power.shape
    offsets = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if (dy, dx) != (0, 0)]
    ratios = []
    for fy, fx in grid_bins(h, w):
        around = [power[(fy + dy) % h, (fx + dx) % w] for dy, dx in offsets]
        ratios.append(power[fy, fx] / max(float(np.median(around)), 1e-30))
    return np.asarray(ratios)


def grid_score(rgb: np.ndarray) -> float:
    """Geometric mean of the 15 bin ratios of one [H,W,3] frame (sides multiples of 4)."""
    ratios = np.maximum(bin_ratios(spectrum(rgb)), 1e-30)
    return float(np.exp(np.log(ratios).mean()))


def geometric_mean(scores: list[float]) -> float:
    if not scores:
        raise ValueError("no scores to average")
    return float(np.exp(np.mean(np.log(np.maximum(scores, 1e-30)))))
