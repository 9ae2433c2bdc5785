"""Classical texture synthesis on raw pixels, no neural network: the graphics baseline the lecture shows
before Gram matching.

- **Efros & Leung**, "Texture Synthesis by Non-parametric Sampling" (ICCV 1999): grow the texture from a
  seed, one pixel at a time, those with the most known neighbours first; each new pixel is the centre of a
  sample window chosen at random among those whose Gaussian-weighted SSD to the known part of the pixel's
  window is within ``1 + epsilon`` of the best.
- **Wei & Levoy**, "Fast Texture Synthesis using Tree-structured Vector Quantization" (SIGGRAPH 2000): start
  from noise drawn from the sample, then synthesise a Gaussian pyramid coarse to fine in scanline order; each
  pixel takes the sample pixel whose causal neighbourhood (the part above and to the left at this level, plus
  the full neighbourhood one level coarser) is nearest, found with a nearest-neighbour index (scikit-learn's,
  in place of the paper's tree-structured VQ). The output wraps around (tileable).

Both copy pixels of the sample, so the result holds no colour the sample lacks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

log = logging.getLogger(__name__)
METHODS = ("efros-leung", "wei-levoy")
Progress = Callable[[int, int], None]  # done, total


@dataclass(frozen=True)
class PixelTextureConfig:
    size: int  # the result is size x size
    window: int = 11  # Efros-Leung: odd window side; Wei-Levoy: odd causal neighbourhood side
    levels: int = 3  # Wei-Levoy pyramid levels
    epsilon: float = 0.1  # Efros-Leung: accept windows within (1 + epsilon) of the best error
    seed: int = 0

    def check(self, sample: np.ndarray) -> None:
        if self.size < 8 or self.size > 1024:
            raise ValueError(f"the result size must be in [8, 1024] pixels, got {self.size}")
        if self.window < 3 or self.window % 2 == 0:
            raise ValueError(f"the neighbourhood must be odd and at least 3, got {self.window}")
        if not 1 <= self.levels <= 6:
            raise ValueError(f"pyramid levels must be in [1, 6], got {self.levels}")
        smallest = min(sample.shape[:2]) // 2 ** (self.levels - 1)
        if min(sample.shape[:2]) < self.window + 2 or smallest < 2 * max(self.window // 2, 2) + 2:
            raise ValueError(
                f"the sample ({sample.shape[1]}x{sample.shape[0]}) is too small for a "
                f"{self.window}-pixel neighbourhood over {self.levels} levels"
            )


def efros_leung(sample: np.ndarray, cfg: PixelTextureConfig, progress: Progress | None = None) -> np.ndarray:
    """HxWx3 uint8 sample -> size x size x 3 uint8, grown from a 3x3 seed in the centre."""
    cfg.check(sample)
    rng = np.random.default_rng(cfg.seed)
    w, half, n = cfg.window, cfg.window // 2, cfg.size
    windows = sliding_window_view(sample.astype(np.float32) / 255, (w, w), axis=(0, 1))  # [h', w', 3, w, w]
    centres = windows[:, :, :, half, half].reshape(-1, 3)
    patches = windows.transpose(0, 1, 3, 4, 2).reshape(-1, w * w * 3)  # one row per sample window
    squares = patches**2
    ax = np.arange(w) - half
    sigma = w / 6.4
    gauss = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma**2))
    gauss = np.repeat(gauss.reshape(-1), 3)
    out = np.zeros((n + 2 * half, n + 2 * half, 3), np.float32)  # padded: windows at the border stay inside
    known = np.zeros((n + 2 * half, n + 2 * half), bool)
    sy, sx = rng.integers(0, sample.shape[0] - 3), rng.integers(0, sample.shape[1] - 3)
    c = half + n // 2 - 1
    out[c : c + 3, c : c + 3] = sample[sy : sy + 3, sx : sx + 3] / 255
    known[c : c + 3, c : c + 3] = True
    filled, total = 9, n * n
    kernel = np.ones((3, 3), np.float32)
    while filled < total:
        inner = known[half : half + n, half : half + n]
        neighbours = cv2.filter2D(inner.astype(np.float32), -1, kernel, borderType=cv2.BORDER_CONSTANT)
        frontier = np.argwhere(~inner & (neighbours > 0))
        order = np.argsort(-neighbours[frontier[:, 0], frontier[:, 1]], kind="stable")
        grown = 0
        for y, x in frontier[order]:
            region = (slice(y, y + w), slice(x, x + w))
            mask = np.repeat(known[region].reshape(-1), 3) * gauss
            template = out[region].reshape(-1)
            weight = mask.sum()
            ssd = squares @ mask - 2 * (patches @ (mask * template)) + (mask * template**2).sum()
            errors = np.maximum(ssd, 0) / weight  # Gaussian-weighted SSD over the known pixels
            best = errors.min()
            choices = np.flatnonzero(errors <= best * (1 + cfg.epsilon) + 1e-12)
            out[y + half, x + half] = centres[rng.choice(choices)]
            known[y + half, x + half] = True
            grown += 1
        filled += grown
        if progress:
            progress(filled, total)
    return np.rint(out[half : half + n, half : half + n] * 255).astype(np.uint8)


def _pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """Finest first: the image, then each level blurred and halved (Gaussian pyramid)."""
    pyramid: list[np.ndarray] = [image.astype(np.float32) / 255]
    for _ in range(levels - 1):
        pyramid.append(cv2.pyrDown(pyramid[-1]))
    return pyramid


def _causal_offsets(window: int) -> list[tuple[int, int]]:
    """The half of a window that scanline order has already filled: rows above, and the left of this row."""
    half = window // 2
    return [(dy, dx) for dy in range(-half, 1) for dx in range(-half, half + 1) if dy < 0 or dx < 0]


def _full_offsets(window: int) -> list[tuple[int, int]]:
    half = window // 2
    return [(dy, dx) for dy in range(-half, half + 1) for dx in range(-half, half + 1)]


def _features(
    level: np.ndarray,
    coarser: np.ndarray | None,
    ys: np.ndarray,
    xs: np.ndarray,
    causal: list[tuple[int, int]],
    full: list[tuple[int, int]],
    wrap: bool,
) -> np.ndarray:
    """Neighbourhood vectors of pixels (ys, xs): causal ones at ``level`` plus full ones at ``coarser``."""
    h, w = level.shape[:2]
    parts = []
    for dy, dx in causal:
        yy, xx = ys + dy, xs + dx
        parts.append(level[yy % h, xx % w] if wrap else level[np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)])
    if coarser is not None:
        ch, cw = coarser.shape[:2]
        for dy, dx in full:
            yy, xx = ys // 2 + dy, xs // 2 + dx
            parts.append(coarser[yy % ch, xx % cw] if wrap else coarser[np.clip(yy, 0, ch - 1), np.clip(xx, 0, cw - 1)])
    return np.concatenate(parts, axis=-1)


def wei_levoy(sample: np.ndarray, cfg: PixelTextureConfig, progress: Progress | None = None) -> np.ndarray:
    """HxWx3 uint8 sample -> size x size x 3 uint8 (tileable), coarse to fine in scanline order."""
    from sklearn.neighbors import NearestNeighbors  # the train extra

    cfg.check(sample)
    rng = np.random.default_rng(cfg.seed)
    source = _pyramid(sample, cfg.levels)
    sizes = [max(4, cfg.size // 2**i) for i in range(cfg.levels)]
    causal, whole, full = _causal_offsets(cfg.window), _full_offsets(cfg.window), _full_offsets(3)
    result: list[np.ndarray] = [np.zeros(1)] * cfg.levels
    total = 2 * sum(s * s for s in sizes)
    done = 0
    for level in reversed(range(cfg.levels)):
        src = source[level]
        coarser_src = source[level + 1] if level + 1 < cfg.levels else None
        # candidates: sample pixels whose neighbourhoods lie wholly inside the sample (a clipped one would
        # describe a texture the sample does not have), at this level and the coarser one
        margin = max(cfg.window // 2, 2 if coarser_src is not None else 0)
        sy, sx = np.mgrid[margin : src.shape[0] - margin, margin : src.shape[1] - margin]
        sy, sx = sy.ravel(), sx.ravel()
        candidates = src[sy, sx]
        n = sizes[level]
        picks = rng.integers(0, len(candidates), n * n)  # noise drawn from the sample
        out = candidates[picks].reshape(n, n, 3).copy()
        coarser_out = result[level + 1] if level + 1 < cfg.levels else None
        # first sweep: the causal neighbourhood (what scanline order has filled); second sweep: the whole
        # window, now that every pixel is synthesised (it mends what the first sweep built on noise)
        for shape in (causal, whole):
            index = NearestNeighbors(n_neighbors=1).fit(_features(src, coarser_src, sy, sx, shape, full, wrap=False))
            for y in range(n):
                for x in range(n):
                    query = _features(out, coarser_out, np.array([y]), np.array([x]), shape, full, wrap=True)
                    (match,) = index.kneighbors(query, return_distance=False)[0]
                    out[y, x] = candidates[match]
                done += n
                if progress and y % 8 == 7:
                    progress(done, total)
        result[level] = out
    return np.rint(result[0] * 255).astype(np.uint8)


def synthesize_pixels(
    method: str, sample: np.ndarray, cfg: PixelTextureConfig, progress: Progress | None = None
) -> np.ndarray:
    if method == "efros-leung":
        return efros_leung(sample, cfg, progress)
    if method == "wei-levoy":
        return wei_levoy(sample, cfg, progress)
    raise ValueError(f"unknown pixel method {method!r}; choose from {', '.join(METHODS)}")
