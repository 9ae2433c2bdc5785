"""Table 16's verdicts from measured rows: latency against the page's round trip, four viewers against one."""

from __future__ import annotations

from training.bench.broadcast import Row, broadcast_table


def row(viewers: int, fps: float, cpu: float, player: str = "chromium") -> Row:
    latency = [150.0 + i for i in range(21)] if player == "chromium" else []
    return Row(viewers, [fps] * viewers, [27.0] * viewers, latency, 24.0, 24.0, 30.0, cpu, player)


def test_the_table_says_each_goal_met_or_missed_and_what_a_viewer_costs() -> None:
    met = broadcast_table([row(1, 24.0, 60.0), row(4, 20.0, 66.0)], 160.0, 10.0, {"VP8": 7.0})
    assert [r[5] for r in met.rows] == ["24.0 / 24.0 / 30.0"] * 2
    latency, four, sent, cpu = met.verdicts
    assert "at least 27.0 frames/s (1.00x" in sent
    assert "+0 ms" in latency and latency.endswith("met.")
    assert "0.83x" in four and "met." in four and "encoded 24.0 frames/s for all 4 viewers" in four
    assert cpu == "Server CPU per extra viewer: +2.0% of one core (1 -> 4 viewers)."
    assert "VP8 7.0 ms" in met.notes[0] and "not per viewer" in met.notes[0]
    missed = broadcast_table([row(1, 24.0, 60.0), row(4, 12.0, 90.0)], 90.0, 10.0, {})
    assert all("missed" in v for v in missed.verdicts[:2])
    apart = [row(1, 30.0, float("nan"), "aiortc"), row(4, 29.0, float("nan"), "aiortc"), row(1, 24.0, 60.0)]
    table = broadcast_table(apart, 160.0, 10.0, {})
    assert table.rows[0][0] == "1 (aiortc)" and table.rows[0][-1].startswith("n/a")
    assert table.verdicts[-1].endswith("the slowest decodes 29.0 frames/s, 0.97x one viewer's (goal 0.8x): met.")
