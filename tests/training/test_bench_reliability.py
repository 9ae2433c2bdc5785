"""Table 10's verdicts follow its figures (the measurement itself runs real servers: `--only reliability`)."""

from __future__ import annotations

from pathlib import Path

from training.bench.reliability import ReliabilityPlan, ReliabilityResult, reliability_table


def result(**kw: object) -> ReliabilityResult:
    base = dict(
        fps_before=[12.0, 12.0, 12.0],
        fps_after=[11.0, 11.5, 12.0],
        quality_fps=1.5,
        refused=[503, 503],
        kept_out_s=10.4,
        memory_mb=(245.0, 302.0, 250.0),
        soak_mb=[300.0, 301.0, 303.0],
        soak_fps=13.0,
        health_ms=40.0,
    )
    return ReliabilityResult(**(base | kw))  # type: ignore[arg-type]


def verdicts(r: ReliabilityResult) -> str:
    table = reliability_table(ReliabilityPlan(Path("models")), r, {"realtime": "ab" * 32})
    assert len(table.rows) == 7 and "realtime abababababab" in table.setup
    return " ".join(table.verdicts)


def test_all_goals_met() -> None:
    text = verdicts(result())
    assert "missed" not in text and "Fairness: met (0.96x" in text


def test_each_goal_can_be_missed() -> None:
    assert "Fairness: missed (0.11x" in verdicts(result(fps_after=[1.3, 1.3, 1.4]))
    assert "Slot attack: missed (30.5 s" in verdicts(result(kept_out_s=30.5))
    assert "Memory: missed (+78%" in verdicts(result(memory_mb=(245.0, 1600.0, 436.0)))
    assert "Soak: missed (+20.0%" in verdicts(result(soak_mb=[300.0, 330.0, 360.0]))
    assert "Offers past the limit: missed" in verdicts(result(refused=[200, 503]))
    assert "Event loop: missed (/api/health at worst 6700 ms" in verdicts(result(health_ms=6700.0))
