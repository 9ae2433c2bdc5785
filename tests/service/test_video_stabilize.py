"""The flicker metric on known answers, and stabilization lowering it."""

from __future__ import annotations

import numpy as np
from test_video_cli import clip_frame

from service.flicker import FlickerMeter
from service.stabilize import StabilizeOptions, Stabilizer


def noisy_stylization(index: int, rgb: np.ndarray) -> np.ndarray:
    """Independent per-frame noise: what flicker looks like."""
    noise = np.random.default_rng(index).normal(0, 20, rgb.shape)
    return np.clip(rgb + noise, 0, 255).astype(np.uint8)


def test_a_copy_of_the_input_scores_one_and_noise_scores_more() -> None:
    same, noisy = FlickerMeter(), FlickerMeter()
    for i in range(8):
        frame = clip_frame(i)
        same.add(frame, frame)
        noisy.add(frame, noisy_stylization(i, frame))
    assert abs(same.ratio - 1.0) < 1e-6
    assert noisy.ratio > 2


def test_stabilization_lowers_flicker() -> None:
    plain, steady = FlickerMeter(), FlickerMeter()
    stabilizer = Stabilizer(StabilizeOptions(blend=0.8))
    for i in range(12):
        frame = clip_frame(i)
        stylized = noisy_stylization(i, frame)
        plain.add(frame, stylized)
        steady.add(frame, stabilizer.step(frame, stylized))
    assert steady.ratio < 0.6 * plain.ratio
