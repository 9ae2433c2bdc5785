"""The follow bench: a painter that moves with the picture scores ~0, one locked to an 8 px lattice does not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.bench.follow import (
    MOVES,
    FollowRow,
    flow_follow_error,
    follow_error,
    follow_errors,
    follow_table,
    live_style,
    sub_lattice,
)
from training.quality import Scores


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
    rows = [
        FollowRow("a", "wave", [2.0, 4.0, 6.0, 6.0, 6.0, 0.1]),
        FollowRow("b", "wave", [1.0, 2.0, 3.0, 3.0, 3.0, 0.1]),
    ]
    table = follow_table(rows, MOVES, 2)
    assert [r[-1] for r in table.rows] == ["1.00", "0.50"]
    assert table.rows[0][-2] == f"{sub_lattice(rows[0].errors, MOVES):.2f}" == "4.80"
    with_clip = follow_table(
        [FollowRow("a", "wave", rows[0].errors, 4.0), FollowRow("b", "wave", rows[1].errors, 3.0)],
        MOVES,
        2,
        "bikes.mp4",
    )
    assert with_clip.header[-2].startswith("bikes.mp4") and [r[-2:] for r in with_clip.rows] == [
        ["4.00", "1.00"],
        ["3.00", "0.75"],
    ]


def _panning(frames: int) -> list[np.ndarray]:
    scene = np.kron(
        np.random.default_rng(1).integers(0, 255, (20, 40, 3)).astype(np.uint8), np.ones((8, 8, 1), np.uint8)
    )
    return [np.ascontiguousarray(scene[:, 3 * t : 3 * t + 200]) for t in range(frames)]


def test_along_a_real_flow_a_follower_scores_near_zero_and_a_lattice_locked_painter_does_not() -> None:
    clip = _panning(6)  # 160x200, a pan of 3 px a frame
    follower = flow_follow_error(lambda rgb: 255 - rgb, clip)
    locked = flow_follow_error(_lattice_locked, clip)
    assert follower < 0.5 and locked > 3.0 * max(follower, 0.5)
    with pytest.raises(ValueError, match="at least 2 frames"):
        flow_follow_error(lambda rgb: rgb, clip[:1])


def test_a_frame_smaller_than_the_margin_is_refused() -> None:
    with pytest.raises(ValueError, match="margin"):
        follow_error(lambda rgb: rgb, np.zeros((40, 40, 3), np.uint8), (1.0, 0.0))


def test_the_style_columns_give_the_other_side_of_the_trade() -> None:
    errors = [2.0, 4.0, 6.0, 6.0, 6.0, 0.1]
    rows = [
        FollowRow("a", "wave", errors, 4.0, style=2e11, clip_style=3e11),
        FollowRow("b", "wave", errors, 2.0, style=3e11, clip_style=4.5e11),
    ]
    table = follow_table(rows, MOVES, 2, "bikes.mp4")
    assert table.header[-4:] == ["live-size style, photos", "/ first", "bikes.mp4: live-size style", "/ first"]
    assert [r[-6:] for r in table.rows][1] == ["2.00", "0.50", "3.00e+11", "1.50", "4.50e+11", "1.50"]
    without = follow_table([FollowRow("a", "wave", errors)], MOVES, 2)
    assert "live-size style, photos" not in without.header


def test_live_style_averages_the_scorer_over_the_frames() -> None:
    seen: list[int] = []

    class Scorer:
        def score(self, output: np.ndarray, frame: np.ndarray, painting: object) -> Scores:
            seen.append(int(output[0, 0, 0]))
            return Scores(style=float(output.mean()), content=0.0)

    frames = [np.full((4, 4, 3), v, np.uint8) for v in (10, 30)]
    assert live_style(lambda rgb: rgb + 1, frames, Path("p.jpg"), Scorer()) == 21.0  # type: ignore[arg-type]
    assert seen == [11, 31]
