"""Ctrl-C or SIGTERM during training: the step in progress finishes, the run saves at that step and stops;
a second signal stops at once. The handlers are the process's own again afterwards."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from training.loop import LoopPlan, run_steps


class Counting:
    """A stepper that sends itself ``signals`` at step ``at`` (from inside the step, as a user's Ctrl-C lands)."""

    def __init__(self, at: int, signals: int, sig: int) -> None:
        self.step = 0
        self.at, self.signals, self.sig = at, signals, sig
        self.previews = 0

    def train_step(self) -> dict[str, float]:
        self.step += 1
        if self.step == self.at:
            for _ in range(self.signals):
                os.kill(os.getpid(), self.sig)
        return {"total": 1.0 / self.step}

    def preview(self, path: Path) -> None:
        self.previews += 1


def plan(tmp_path: Path) -> LoopPlan:
    return LoopPlan(
        out_dir=tmp_path,
        steps=100,
        columns=("total",),
        shown=("total",),
        desc="test",
        checkpoint_every=25,
        preview_every=50,
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_at_the_current_step_and_stops(tmp_path: Path, sig: int) -> None:
    before = signal.getsignal(sig)
    stepper = Counting(at=7, signals=1, sig=sig)
    saved: list[int] = []
    ema = run_steps(plan(tmp_path), stepper, lambda ema: saved.append(stepper.step))
    assert stepper.step == 7 and saved == [7] and stepper.previews == 1
    assert ema["total"] < 1.0
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert rows[0] == "step,seconds,total" and [r.split(",")[0] for r in rows[1:]] == [str(i) for i in range(1, 8)]
    assert signal.getsignal(sig) is before


def test_a_second_signal_stops_without_saving(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGINT)
    stepper = Counting(at=30, signals=2, sig=signal.SIGINT)
    saved: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        run_steps(plan(tmp_path), stepper, lambda ema: saved.append(stepper.step))
    assert saved == [25]  # only the scheduled checkpoint before the signals
    assert signal.getsignal(signal.SIGINT) is before
