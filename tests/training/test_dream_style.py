"""The bundled dream styles: they amplify their layer by the recorded factor, and blend smoothly with paintings."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from service import contract
from service.engine import Engine, RuntimeOptions
from training.bench.dream import Energy, frame_of

from .conftest import needs_data

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load(MODELS, RuntimeOptions(providers=("CPUExecutionProvider",)))


def dream_entries(engine: Engine) -> list[tuple[contract.ModelEntry, str, dict[str, object]]]:
    return [(m.entry, style, info) for m in engine.models.values() for style, info in m.entry.dreams.items()]


def test_the_realtime_model_ships_a_low_and_a_high_dream_layer(engine: Engine) -> None:
    layers = {info["layer"] for entry, _, info in dream_entries(engine) if entry.tier == "realtime"}
    assert any(str(layer).startswith("relu3") for layer in layers), layers
    assert any(str(layer).startswith("relu5") for layer in layers), layers
    for _, style, info in dream_entries(engine):
        assert style == contract.DREAM_PREFIX + str(info["layer"]) and float(info["gain"]) > 1.5  # type: ignore[arg-type]


def test_each_dream_style_raises_its_layer_by_the_recorded_factor(engine: Engine) -> None:
    """Measured again on the held-out photos the manifest names, at 640x480 (export measured at 256 px)."""
    photos = needs_data("photos")
    entries = dream_entries(engine)
    energy = Energy(tuple({str(info["layer"]) for _, _, info in entries}))
    for entry, style, info in entries:
        frames = [frame_of(photos / name) for name in info["measured_on"]]  # type: ignore[attr-defined]
        weights = contract.one_hot(entry.styles.index(style), len(entry.styles))
        gains = [energy.gain(f, engine.stylize(f, weights, model=entry.name), str(info["layer"])) for f in frames]
        gain = math.exp(float(np.mean(np.log(gains))))
        recorded = float(info["gain"])  # type: ignore[arg-type]
        print(f"{entry.name}/{style}: gain {gain:.2f} at 640x480, recorded {recorded:.2f} at 256 px")
        assert gain > 0.5 * recorded and gain > 1.5, (style, gain, recorded)


def test_blending_a_painting_into_a_dream_changes_the_output_continuously(engine: Engine) -> None:
    entry, style, _ = dream_entries(engine)[0]
    painting = next(s for s in entry.styles if s not in entry.dreams)
    y, x = np.mgrid[0:96, 0:128]
    rgb = np.stack([x * 2, y * 2, (x + y) % 256], axis=-1).astype(np.uint8)
    outs = []
    for t in np.linspace(0.0, 1.0, 11):
        weights = np.zeros((1, len(entry.styles)), np.float32)
        weights[0, entry.styles.index(painting)] = 1.0 - t
        weights[0, entry.styles.index(style)] = t
        outs.append(engine.stylize(rgb, np.maximum(weights, 0) / weights.sum(), model=entry.name).astype(np.float32))
    total = np.abs(outs[-1] - outs[0]).mean()
    steps = [np.abs(b - a).mean() for a, b in zip(outs, outs[1:], strict=False)]
    assert total > 10  # the painting and the dream are far apart
    assert max(steps) < 0.35 * total  # no jump: every 10% of blend moves the picture a little
    assert sum(steps) < 3 * total  # and the path does not wander
