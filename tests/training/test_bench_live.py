"""Table 9's verdicts: the grid goal holds for every style, and the 8-pixel mesh is reported beside the score."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.bench import live
from training.quality import Scores


class FixedScorer:
    """A stand-in for the VGG scorer: fixed losses, so the table's arithmetic is what is tested."""

    def score(self, out: np.ndarray, frame: np.ndarray, painting: Path) -> Scores:
        return Scores(style=1e11, content=3e5)


def frames() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    clean = np.clip(0.5 + rng.normal(0, 0.05, (480, 640, 3)), 0, 1)
    y, x = np.indices((480, 640))
    lattice = np.clip(clean + 0.1 * ((y // 4 + x // 4) % 2 - 0.5)[..., None], 0, 1)  # 8-pixel period only
    mesh = np.clip(clean + 0.1 * ((y // 2 + x // 2) % 2 - 0.5)[..., None], 0, 1)  # 4-pixel period
    return clean, lattice, mesh


def scores() -> live.LiveScores:
    clean, lattice, mesh = frames()
    s = live.LiveScores()
    s.grid["photo"] = [1.0]
    s.mesh8["photo"] = [1.0]
    for style, out in (("calm", clean), ("lattice", lattice), ("meshy", mesh)):
        s.add("rt", style, clean, out, Path("p.jpg"), FixedScorer())  # type: ignore[arg-type]
    for b in live.BRUSHES:
        s.brush_ms[b], s.brush_grid[b], s.brush_mesh8[b] = 10.0, 1.0, 1.0
    return s


def test_one_meshy_style_misses_the_goal_and_the_8_pixel_lattice_shows_in_its_own_column() -> None:
    s = scores()
    assert s.worst_style("rt")[0] == "meshy"
    calm, lattice = s.mesh8["rt"][0], s.mesh8["rt"][1]
    assert lattice > 3 * calm and s.grid["rt"][1] < 2  # the quarter bins miss the lattice; eighths see it
    plan = live.LivePlan(photos=(Path("a.jpg"),), paintings={"calm": Path("p.jpg")})
    table = live.live_table(plan, s, {"rt": "realtime"}, None, {"rt": "ab" * 32})
    row = next(r for r in table.rows if r[0] == "rt")
    assert row[3].endswith("(meshy)") and float(row[4]) > 1
    assert any("worst style meshy" in v and "MISSES" in v for v in table.verdicts), table.verdicts
