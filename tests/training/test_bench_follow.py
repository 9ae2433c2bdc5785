"""The follow bench: a painter that moves with the picture scores ~0, one locked to an 8 px lattice does not."""

from __future__ import annotations

import numpy as np
import pytest

from training.bench.follow import MOVES, follow_error, follow_errors, follow_table, sub_lattice


def _scene() -> np.ndarray:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (12, 16, 3)).astype(np.uint8)
    return np.kron(small, np.ones((10, 10, 1), np.uint8))  # 120x160, detail at every scale the moves test


def _lattice_locked(rgb: np.ndarray) -> np.ndarray:
    """Each 8x8 block painted its mean: moves with the picture only by whole blocks."""
    h, w = rgb.shape[:2]
    blocks = rgb.reshape(h // 8, 8, w // 8, 8, 3).mean(axis=(1, 3))
    return np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1).astype(np.uint8)


def test_a_painter_that_moves_with_the_picture_scores_zero() -> None:
    errors = follow_errors(lambda rgb: 255 - rgb, [_scene()], MOVES)
    assert max(errors) < 0.5


def test_a_lattice_locked_painter_fails_every_move_but_whole_steps() -> None:
    errors = dict(zip(MOVES, follow_errors(_lattice_locked, [_scene()], MOVES), strict=True))
    assert errors[(8.0, 0.0)] < 0.5
    assert min(e for m, e in errors.items() if m != (8.0, 0.0)) > 2.0
    assert errors[(4.0, 4.0)] > errors[(0.5, 0.0)]  # half a lattice step is the worst


def test_the_table_compares_each_painting_with_the_first_models() -> None:
    rows = [("a", "wave", [2.0, 4.0, 6.0, 6.0, 6.0, 0.1]), ("b", "wave", [1.0, 2.0, 3.0, 3.0, 3.0, 0.1])]
    table = follow_table(rows, MOVES, 2)
    assert [r[-1] for r in table.rows] == ["1.00", "0.50"]
    assert table.rows[0][-2] == f"{sub_lattice(rows[0][2], MOVES):.2f}" == "4.80"


def test_a_frame_smaller_than_the_margin_is_refused() -> None:
    with pytest.raises(ValueError, match="margin"):
        follow_error(lambda rgb: rgb, np.zeros((40, 40, 3), np.uint8), (1.0, 0.0))
