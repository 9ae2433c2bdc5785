"""Stroke detail restoration: give an image back the fine detail a reference has, octave by octave.

Averaging two paintings of the same scene whose strokes do not line up (what temporal stabilization
does when the camera moves and the network repaints each frame) keeps the colours and loses the
strokes: the detail's energy falls as it would for any mix of uncorrelated textures (Heitz and
Neyret, "High-Performance By-Example Noise using a Histogram-Preserving Blending Operator", HPG
2018, restore the variance such a blend loses). Here the image's Laplacian bands are rescaled, each
where its local energy is below the reference's, toward ``target`` times that energy. Gains are at
least 1 (detail is only given back, never taken away) and at most ``max_gain``; they vary smoothly,
being computed on a grid 4 to 8 times coarser than the band.
"""

from __future__ import annotations

import cv2
import numpy as np

_CHANNEL_SUM = np.ones((1, 3), np.float32)
_OCTAVES = 3  # bands of 1-2, 2-4 and 4-8 px: the strokes; coarser structure is left to the blend


def restore_detail(image: np.ndarray, reference: np.ndarray, target: float = 1.0, max_gain: float = 2.0) -> np.ndarray:
    """HxWx3 uint8 ``image`` with its detail raised toward ``target`` x ``reference``'s (same shape)."""
    if image.shape != reference.shape or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"detail restoration needs two HxWx3 images of one size, got {image.shape} and {reference.shape}"
        )
    if not target > 0 or not max_gain >= 1.0:
        raise ValueError(f"detail target must be > 0 and max gain >= 1, got {target} and {max_gain}")
    image_levels = _pyramid(image.astype(np.float32))
    reference_levels = _pyramid(reference.astype(np.float32))
    delta: np.ndarray | None = None
    for level in reversed(range(_OCTAVES)):  # coarse to fine: each band's correction rides up to the next
        band = _band(image_levels, level)
        gain = _gain(band, _band(reference_levels, level), target, max_gain, shrink=3 if level == 0 else 2)
        correction = band * gain[..., None]
        if delta is not None:
            correction += _up(delta, band)
        delta = correction
    assert delta is not None
    return np.asarray(cv2.add(image_levels[0], delta, dtype=cv2.CV_8U))


def _pyramid(image: np.ndarray) -> list[np.ndarray]:
    levels = [image]
    for _ in range(_OCTAVES):
        levels.append(cv2.pyrDown(levels[-1]))
    return levels


def _band(levels: list[np.ndarray], level: int) -> np.ndarray:
    """The Laplacian band at ``level``: that level minus the next coarser one brought back up."""
    return levels[level] - _up(levels[level + 1], levels[level])


def _up(image: np.ndarray, like: np.ndarray) -> np.ndarray:
    return np.asarray(cv2.pyrUp(image, dstsize=(like.shape[1], like.shape[0])))


def _gain(band: np.ndarray, reference_band: np.ndarray, target: float, max_gain: float, shrink: int) -> np.ndarray:
    """(gain - 1) per pixel of ``band``, from local energies ``shrink`` octaves coarser (so it is smooth)."""
    ratio = np.sqrt((_energy(reference_band, shrink) * target + 1.0) / (_energy(band, shrink) + 1.0))
    np.clip(ratio, 1.0, max_gain, out=ratio)
    ratio -= 1.0
    for _ in range(shrink):
        ratio = np.asarray(cv2.pyrUp(ratio))
    if ratio.shape[:2] != band.shape[:2]:
        ratio = np.asarray(cv2.resize(ratio, (band.shape[1], band.shape[0]), interpolation=cv2.INTER_LINEAR))
    return ratio


def _energy(band: np.ndarray, shrink: int) -> np.ndarray:
    energy = np.asarray(cv2.transform(band * band, _CHANNEL_SUM))
    for _ in range(shrink):
        energy = np.asarray(cv2.pyrDown(energy))
    return energy
