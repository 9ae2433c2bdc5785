"""Table 14's verdicts from measured rows: each size against its goal, and where the browser's frame time goes."""

from __future__ import annotations

from pathlib import Path

from training.bench.in_browser import PathResult, in_browser_table

MODELS = Path(__file__).resolve().parents[2] / "models"
LATENCY = [50.0 + i for i in range(11)]


def row(path: str, size: tuple[int, int], fps: float, alone: float = 0.0, run: float = 0.0) -> PathResult:
    return PathResult(path, size, 1, fps, LATENCY, 50.0, 0.1, "how", side=max(size), run_ms=run, alone_ms=alone)


def test_the_table_says_where_the_browsers_frame_time_goes() -> None:
    rows = [row("server", (480, 360), 20.0), row("browser", (480, 360), 22.0, alone=40.0, run=38.0)]
    bound = in_browser_table(rows, MODELS, 10.0)
    assert any(
        "(one painter): session.run 38.0 ms of the 45.5 ms" in v and "WASM run is what is left" in v
        for v in bound.verdicts
    )
    assert any(v.startswith("480x360: in the browser 22.0 fps") and "MISSES" in v for v in bound.verdicts)
    rows[1] = row("browser", (480, 360), 22.0, alone=20.0, run=18.0)
    loop = in_browser_table(rows, MODELS, 10.0)
    assert any("25.5 ms a frame go to the loop around it" in v for v in loop.verdicts)


def test_the_table_weighs_the_pages_painters_against_one() -> None:
    """A row forced to one painter is shown beside the page's own choice and never taken for it."""
    slow = [80.0 + i for i in range(11)]
    rows = [
        PathResult("browser", (640, 480), 1, 17.0, slow, 50.0, 0.1, "how", side=640, painters=2),
        row("server", (640, 480), 24.0),
        PathResult("browser", (640, 480), 1, 12.0, slow, 50.0, 0.1, "how", side=640, painters=1, forced=True),
    ]
    table = in_browser_table(rows, MODELS, 10.0)
    assert any(v.startswith("640x480: in the browser 17.0 fps") for v in table.verdicts)
    assert any(
        "the page's 2 painters against 1: 17.0 against 12.0 fps, latency 85 against 85 ms" in v for v in table.verdicts
    )
    assert any("?painters=1" in r[1] for r in table.rows)
