"""Grid score: how strongly a frame shows a 2- or 4-pixel mesh (../shared/QUALITY-METRIC.md, "Grid score").

A decoder that upsamples by 2 and is not balanced paints a pattern with a period of 2 or 4 pixels (Odena,
Dumoulin & Olah, "Deconvolution and Checkerboard Artifacts", Distill 2016). In the power spectrum that is a
spike at exactly N/2 or N/4 cycles, where photos and paintings are smooth. The score is the geometric mean,
over the 15 bins (fy, fx) in {0, H/4, H/2, 3H/4} x {0, W/4, W/2, 3W/4} less (0, 0), of the bin's power over
the median of its 5x5 neighbourhood: about 1 means no spike, 10 a tenfold one. ``divisions=8`` takes the bins
at every eighth of a side as well (63): the 8-pixel mesh of a network that strides by 8, which the defined
score (quarters) does not see; table 9 reports it beside the score. Numpy only.
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


def grid_bins(h: int, w: int, divisions: int = 4) -> list[tuple[int, int]]:
    """The (fy, fx) bins at multiples of 1/``divisions`` of each side (4: 15 bins, 8: 63), (0, 0) left out."""
    if divisions not in (4, 8):
        raise ValueError(f"divisions must be 4 or 8, got {divisions}")
    if h % divisions or w % divisions or h < 2 * divisions or w < 2 * divisions:
        raise ValueError(f"frame sides must be multiples of {divisions} and at least {2 * divisions}, got {w}x{h}")
    return [
        (ky * h // divisions, kx * w // divisions)
        for ky in range(divisions)
        for kx in range(divisions)
        if (ky, kx) != (0, 0)
    ]


def bin_ratios(power: np.ndarray, divisions: int = 4) -> np.ndarray:
    """Each grid bin's power over the median of its 5x5 neighbourhood (bin excluded, wrapping): [15] (or [63])."""
    h, w = power.shape
    offsets = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if (dy, dx) != (0, 0)]
    ratios = []
    for fy, fx in grid_bins(h, w, divisions):
        around = [power[(fy + dy) % h, (fx + dx) % w] for dy, dx in offsets]
        ratios.append(power[fy, fx] / max(float(np.median(around)), 1e-30))
    return np.asarray(ratios)


def grid_score(rgb: np.ndarray, divisions: int = 4) -> float:
    """Geometric mean of the 15 bin ratios of one [H,W,3] frame (sides multiples of 4); ``divisions=8``: the 63
    bins at eighths (sides multiples of 8)."""
    ratios = np.maximum(bin_ratios(spectrum(rgb), divisions), 1e-30)
    return float(np.exp(np.log(ratios).mean()))


def geometric_mean(scores: list[float]) -> float:
    if not scores:
        raise ValueError("no scores to average")
    return float(np.exp(np.mean(np.log(np.maximum(scores, 1e-30)))))
