"""Carried pairs for a network with a memory: what the second frame, the memory and the target hold."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from service.contract import MEMORY_CHANNELS
from training.carry import carried_loss, carried_pair, nearest_squared
from training.checkpoint import CheckpointError, build_from_checkpoint, load_checkpoint
from training.losses import camera_grid
from training.train import Trainer

from .test_train_loop import config


def _batch(seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(3, 3, 8, 12, generator=gen)
    return torch.nn.functional.interpolate(coarse, size=(64, 96), mode="bicubic", align_corners=False).clamp(0, 1)


def test_the_target_is_the_painting_moved_as_the_frame_was() -> None:
    content = _batch()
    pair = carried_pair(content, content.clone(), random.Random(1), flow_error=0.0)
    trusted = pair.trust.expand_as(pair.frame) > 0
    assert trusted.float().mean() > 0.5
    # a "painting" that is the frame itself, carried along the true move, is the moved frame wherever trusted
    torch.testing.assert_close(pair.target[trusted], pair.frame[trusted], atol=1e-5, rtol=0)
    assert pair.memory.shape == (3, MEMORY_CHANNELS, 64, 96)
    torch.testing.assert_close(pair.memory[:, :3], pair.target * pair.trust)  # no flow error: the target itself
    torch.testing.assert_close(pair.memory[:, 3:], pair.trust)


def test_a_new_subject_is_pasted_where_the_memory_is_not_trusted() -> None:
    content = _batch()
    pair = carried_pair(content, torch.rand_like(content), random.Random(2))
    moved = pair.held.frame()  # the batch as the camera sees it, before the new subjects
    for i in range(3):
        box = (pair.trust[i, 0] == 0) & (pair.frame[i] == moved[(i + 1) % 3]).all(dim=0)
        assert box.sum() >= (64 // 8) * (96 // 8)  # at least the smallest box, the next item's pixels
        assert (pair.memory[i, :, box] == 0).all()


def test_a_wrong_flow_moves_the_memory_off_the_target() -> None:
    content, painted = _batch(), _batch(seed=3)
    exact = carried_pair(content, painted, random.Random(4), flow_error=0.0)
    wrong = carried_pair(content, painted, random.Random(4), flow_error=2.0)
    torch.testing.assert_close(wrong.target, exact.target)
    assert (wrong.memory[:, :3] - exact.memory[:, :3]).abs().max() > 1e-2


def test_a_chain_is_held_to_its_first_painting_however_the_last_one_drifted() -> None:
    content, painted = _batch(), _batch(seed=6)
    first = carried_pair(content, painted, random.Random(7), flow_error=0.0)
    drifted = torch.roll(first.target, shifts=3, dims=-1)  # a second painting that slid off the scene
    second = carried_pair(first.frame, drifted, random.Random(8), flow_error=0.0, held=first.held)
    again = carried_pair(first.frame, first.target, random.Random(8), flow_error=0.0, held=first.held)
    torch.testing.assert_close(second.target, again.target)  # the target is the first painting, moved twice
    assert (second.memory - again.memory).abs().max() > 0.1  # the memory is the drifted one
    assert second.trust.sum() < first.trust.sum()  # two moves and two new subjects: less is trusted
    # the first painting carried along both moves at once, from where each pixel came
    moved = carried_pair(content, painted, random.Random(7), flow_error=0.0).held.moved(
        camera_grid(content, (0.0, 0.0, 0.0, 1.0))
    )
    torch.testing.assert_close(moved.target(), first.target, atol=1e-4, rtol=0)


def test_the_stabilizer_flow_carries_the_memory_as_the_service_would() -> None:
    content = _batch()
    painted = _batch(seed=9)
    pair = carried_pair(content, painted, random.Random(10), flow="stabilizer")
    trust = pair.memory[:, 3:]
    assert pair.memory.shape == (3, MEMORY_CHANNELS, 64, 96)
    assert 0 <= trust.min() and trust.max() <= 1 + 1e-6
    both = (trust > 0.99) & (pair.trust > 0)
    assert both.float().mean() > 0.3  # its flow finds most of the moved frame
    # where the stabilizer trusts its flow, the memory is close to the true carried painting (not exact: its own flow)
    error = (pair.memory[:, :3] / trust.clamp_min(1e-6) - pair.target).abs().mean(dim=1, keepdim=True)
    assert error[both].mean() < 0.05
    with pytest.raises(ValueError, match="flow"):
        carried_pair(content, painted, random.Random(0), flow="magic")


def test_the_loss_counts_trusted_pixels_of_painted_items_only() -> None:
    content = _batch()
    pair = carried_pair(content, torch.rand_like(content), random.Random(5))
    everyone = torch.ones(3, dtype=torch.bool)
    assert carried_loss(pair.target, pair, everyone) == 0
    garbage = torch.where(pair.trust > 0, pair.target, torch.full_like(pair.target, 7.0))
    assert carried_loss(garbage, pair, everyone) == 0  # untrusted pixels do not count
    off = pair.target + 0.1
    assert carried_loss(off, pair, everyone) == pytest.approx(0.01, rel=1e-4)
    assert carried_loss(off, pair, torch.zeros(3, dtype=torch.bool)) == 0  # dream items are left out


def test_slack_forgives_a_stroke_a_pixel_off_but_not_a_blur() -> None:
    target = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(3))
    off = torch.roll(target, shifts=1, dims=-1)  # a pixel to the right (the first column wraps round)
    assert nearest_squared(off, target, 0).mean() > 0.05
    assert nearest_squared(off, target, 1)[..., 1:].max() == 0
    blurred = F.avg_pool2d(target, 3, stride=1, padding=1, count_include_pad=False)
    assert nearest_squared(blurred, target, 1).mean() > 0.01  # the mean of where a stroke might be still costs
    with pytest.raises(ValueError, match="slack"):
        config(Path("c"), [Path("s.jpg")], Path("o"), memory_weight=1.0, memory_slack=4)


def test_mismatched_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="same"):
        carried_pair(_batch(), _batch()[:, :, :32], random.Random(0))
    with pytest.raises(ValueError, match=">= 0"):
        carried_pair(_batch(), _batch(), random.Random(0), flow_error=-1.0)


def test_a_memory_run_grows_a_memory_and_trains_it_on_chains(
    picture_dirs: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    content, styles = picture_dirs
    run = config(
        content,
        styles[:2],
        tmp_path / "run",
        steps=3,
        memory_weight=10.0,
        memory_chain=3,
        memory_gate=True,
        memory_flow="stabilizer",
        memory_warmup=2,
    )
    Trainer(run).run()
    with (tmp_path / "run" / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and all(float(r["memory"]) > 0 and float(r["carried"]) > 0 for r in rows)
    net, _ = build_from_checkpoint(load_checkpoint(tmp_path / "run" / "checkpoint.pt"))
    assert net.config.memory and all(conv.weight.abs().max() > 0 for conv in net.remember)  # grown from zero
    assert net.gate is not None and net.gate.weight.abs().max() > 0
    Trainer(config(content, styles[:1], tmp_path / "plain", steps=1)).run()
    with (tmp_path / "plain" / "log.csv").open() as handle:
        assert all(float(r["memory"]) == 0.0 for r in csv.DictReader(handle))  # off: not computed
    with pytest.raises(CheckpointError, match="without a memory"):
        Trainer(
            config(
                content, styles[:1], tmp_path / "more", memory_weight=1.0, resume=tmp_path / "plain" / "checkpoint.pt"
            )
        )
