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
    assert any("run 38.0 ms of the 45.5 ms" in v and "WASM run is what is left" in v for v in bound.verdicts)
    assert any(v.startswith("480x360: in the browser 22.0 fps") and "MISSES" in v for v in bound.verdicts)
    rows[1] = row("browser", (480, 360), 22.0, alone=20.0, run=18.0)
    loop = in_browser_table(rows, MODELS, 10.0)
    assert any("25.5 ms a frame go to the loop around it" in v for v in loop.verdicts)
