"""Stroke detail restoration on known answers: detail given back, never taken, bounded, smooth."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from service.detail import restore_detail


def strokes(seed: int, size: tuple[int, int] = (96, 128)) -> np.ndarray:
    """Random 2-6 px blobs on mid grey: a stand-in for painted strokes."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 1, (*size, 3)).astype(np.float32)
    blobs = cv2.GaussianBlur(noise, (0, 0), 1.2)
    return np.clip(128 + blobs / blobs.std() * 40, 0, 255).astype(np.uint8)


def detail_energy(image: np.ndarray) -> float:
    """Mean squared difference from a 3 px blur: the energy of the finest octaves."""
    x = image.astype(np.float32)
    return float(np.mean((x - cv2.GaussianBlur(x, (0, 0), 3.0)) ** 2))


def test_a_blend_of_misaligned_strokes_gets_its_detail_back() -> None:
    a, b = strokes(1), strokes(2)
    mixed = cv2.addWeighted(a, 0.5, b, 0.5, 0.0)  # uncorrelated: about half the energy is gone
    assert detail_energy(mixed) < 0.6 * detail_energy(b)
    restored = restore_detail(mixed, b)
    assert 0.75 * detail_energy(b) < detail_energy(restored) < 1.3 * detail_energy(b)
    assert abs(float(restored.mean()) - float(mixed.mean())) < 2.0  # the colours are kept


def test_detail_is_never_taken_away_nor_raised_past_the_bound() -> None:
    rich, flat = strokes(3), np.full((96, 128, 3), 90, np.uint8)
    assert np.abs(restore_detail(rich, flat).astype(int) - rich).max() <= 1  # reference poorer: unchanged
    assert np.abs(restore_detail(rich, rich).astype(int) - rich).max() <= 1  # already matching: unchanged
    assert np.abs(restore_detail(flat, rich).astype(int) - 90).max() <= 1  # no detail to raise: stays flat
    faint = cv2.addWeighted(rich, 0.1, flat, 0.9, 0.0)
    boosted = restore_detail(faint, rich, target=4.0, max_gain=2.0)
    assert detail_energy(boosted) <= 4.0 * 1.1 * detail_energy(faint)  # at most twice the amplitude


def test_the_target_scales_the_restored_energy() -> None:
    a, b = strokes(4), strokes(5)
    mixed = cv2.addWeighted(a, 0.5, b, 0.5, 0.0)
    more, less = restore_detail(mixed, b, target=1.5), restore_detail(mixed, b, target=1.0)
    assert detail_energy(more) > 1.15 * detail_energy(less)


def test_bad_inputs_are_refused_with_the_shapes() -> None:
    with pytest.raises(ValueError, match="one size"):
        restore_detail(strokes(1), strokes(1, (64, 64)))
    with pytest.raises(ValueError, match="target"):
        restore_detail(strokes(1), strokes(2), target=0.0)
