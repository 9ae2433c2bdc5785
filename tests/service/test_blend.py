"""Weight validation (what the control channel and REST accept) and per-frame easing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from service.blend import Easing, check_strength, parse_weights_text, weights_vector
from service.errors import BadRequest
from service.look import LookUpdate

STYLES = ("a", "b", "c")


def test_weights_by_name_are_normalized_and_ordered() -> None:
    vector = weights_vector(STYLES, {"c": 3, "a": 1})
    np.testing.assert_allclose(vector, [[0.25, 0.0, 0.75]])
    assert vector.dtype == np.float32


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"x": 1}, "unknown styles ['x']"),
        ({"a": math.nan}, "finite"),
        ({"a": -1, "b": 2}, "non-negative"),
        ({"a": 0, "b": 0}, "positive"),
        ({}, "non-empty"),
        ([1, 0, 0], "non-empty object"),
        ({"a": "1"}, "must be a number"),
        ({"a": True}, "must be a number"),
    ],
)
def test_bad_weights_say_what_is_wrong(weights: object, message: str) -> None:
    """Values are checked once, by the control vocabulary; names against the model by ``weights_vector``."""
    with pytest.raises(BadRequest, match=message.replace("[", r"\[").replace("]", r"\]")):
        update = LookUpdate.parse({"weights": weights})
        weights_vector(STYLES, update.weights or {})


def test_weights_text_form() -> None:
    assert parse_weights_text("a=1, b=0.5") == {"a": 1.0, "b": 0.5}
    with pytest.raises(BadRequest, match="style=1"):
        parse_weights_text("a")


@pytest.mark.parametrize("value", [-0.1, 1.5, math.nan, "1", None, True])
def test_strength_outside_unit_interval_is_rejected(value: object) -> None:
    with pytest.raises(BadRequest, match="strength"):
        check_strength(value)


def test_easing_moves_linearly_to_the_target_then_holds() -> None:
    easing = Easing(np.array([[1.0, 0.0]], np.float32), frames=4)
    np.testing.assert_allclose(easing.step(), [[1.0, 0.0]])
    easing.set_target(np.array([[0.0, 1.0]], np.float32))
    steps = [easing.step()[0, 1] for _ in range(6)]
    np.testing.assert_allclose(steps, [0.25, 0.5, 0.75, 1.0, 1.0, 1.0], atol=1e-6)


def test_easing_retargets_from_where_it_is() -> None:
    easing = Easing(np.array([[1.0, 0.0]], np.float32), frames=2)
    easing.set_target(np.array([[0.0, 1.0]], np.float32))
    assert easing.step()[0, 1] == pytest.approx(0.5)
    easing.set_target(np.array([[1.0, 0.0]], np.float32))
    np.testing.assert_allclose([easing.step()[0, 1], easing.step()[0, 1]], [0.25, 0.0], atol=1e-6)


def test_zero_ease_frames_applies_at_once() -> None:
    easing = Easing(np.array([[1.0, 0.0]], np.float32), frames=0)
    easing.set_target(np.array([[0.0, 1.0]], np.float32))
    np.testing.assert_allclose(easing.step(), [[0.0, 1.0]])


def test_easing_jumps_when_the_style_count_changes() -> None:
    easing = Easing(np.array([[1.0, 0.0]], np.float32), frames=5)
    easing.set_target(np.array([[0.0, 0.0, 1.0]], np.float32))
    np.testing.assert_allclose(easing.step(), [[0.0, 0.0, 1.0]])
