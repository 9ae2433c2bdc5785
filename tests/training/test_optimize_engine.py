"""The shared optimisation engine on tiny random networks: mechanics only, never image quality."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from training.features import Taps
from training.losses import gram, style_loss, total_variation
from training.optimize.engine import (
    ImageTooLargeError,
    Objective,
    OptimConfig,
    activation_bytes,
    ensure_fits,
    octave_sizes,
    optimize,
)


class TinyFeatures(nn.Module):
    """Two conv+ReLU taps, random but fixed: enough to exercise objectives."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.b = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.requires_grad_(False)

    def forward(self, image: torch.Tensor) -> Taps:
        # [1,3,H,W] -> {a: [1,8,H,W], b: [1,16,H/2,W/2]}
        a = self.a(image)
        return Taps(a=a, b=self.b(a))


def stripes(h: int = 32, w: int = 32) -> torch.Tensor:
    x = torch.arange(w).float()
    row = torch.stack([(x % 8 < 4).float(), (x % 6 < 3).float(), 0.5 * torch.ones(w)])
    return row[:, None, :].expand(3, h, w)[None].contiguous()


def noise(h: int = 32, w: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def quiet(**kwargs: object) -> OptimConfig:
    return OptimConfig(progress=False, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("optimizer,lr,normalize", [("lbfgs", 1.0, False), ("adam", 0.05, False), ("sgd", 0.01, True)])
def test_objective_decreases(optimizer: str, lr: float, normalize: bool) -> None:
    net = TinyFeatures()
    target = net(stripes()).b

    def at(size: tuple[int, int]) -> Objective:
        return lambda image: {"features": torch.mean((net(image).b - target) ** 2)}

    result = optimize(at, noise(), quiet(iterations=(30,), optimizer=optimizer, lr=lr, normalize_grad=normalize))
    assert result.history[-1] < 0.2 * result.history[0]
    assert result.final_terms["features"] < 0.2 * result.history[0]
    assert result.image.shape == (1, 3, 32, 32) and 0 <= float(result.image.min()) <= float(result.image.max()) <= 1


def test_sigmoid_parameterization_stays_in_range_and_descends() -> None:
    net = TinyFeatures()
    target = net(stripes()).a
    result = optimize(
        lambda size: lambda image: {"f": torch.mean((net(image).a - target) ** 2)},
        noise(),
        quiet(iterations=(20,), parameterization="sigmoid"),
    )
    assert result.history[-1] < 0.5 * result.history[0]


def test_total_variation_lowers_noise() -> None:
    start = noise()
    zero = lambda size: lambda image: {"nothing": image.sum() * 0.0}  # noqa: E731
    result = optimize(zero, start, quiet(iterations=(40,), optimizer="adam", lr=0.02, tv_weight=1.0))
    assert float(total_variation(result.image)) < 0.2 * float(total_variation(start))
    assert float(result.image.std()) < float(start.std())


def test_blur_every_n_steps_smooths() -> None:
    start = noise()
    zero = lambda size: lambda image: {"nothing": image.sum() * 0.0}  # noqa: E731
    result = optimize(zero, start, quiet(iterations=(4,), optimizer="sgd", blur_every=2, blur_sigma=1.0))
    assert float(total_variation(result.image)) < 0.3 * float(total_variation(start))


def test_gram_targets_get_matched() -> None:
    net = TinyFeatures()
    layers = ("a", "b")
    targets = {k: gram(v) for k, v in net(0.25 + 0.5 * stripes()).items()}  # reachable inside [0,1]

    def at(size: tuple[int, int]) -> Objective:
        return lambda image: {"style": style_loss(net(image), targets, layers)}

    start = noise()
    before = float(style_loss(net(start), targets, layers))
    result = optimize(at, start, quiet(iterations=(60,)))
    assert result.final_terms["style"] < 1e-2 * before


@pytest.mark.parametrize("carry", ["image", "detail"])
def test_multiscale_returns_the_requested_size(carry: str) -> None:
    asked: list[tuple[int, int]] = []

    def at(size: tuple[int, int]) -> Objective:
        asked.append(size)
        return lambda image: {"mean": torch.mean((image - 0.3) ** 2)}

    result = optimize(
        at, noise(37, 50), quiet(iterations=(3,), octaves=3, octave_scale=1.5, carry=carry, optimizer="adam", lr=0.05)
    )
    assert result.image.shape == (1, 3, 37, 50)
    assert asked[:3] == octave_sizes((37, 50), 3, 1.5) and asked[2] == (37, 50)
    assert asked[0][0] < asked[1][0] < asked[2][0]
    assert set(result.seconds_per_iteration) == {f"{w}x{h}" for h, w in asked[:3]}


def test_snapshots_and_gif_are_written(tmp_path: Path) -> None:
    cfg = quiet(
        iterations=(6, 4),
        octaves=2,
        optimizer="adam",
        lr=0.02,
        snapshot_every=3,
        snapshot_dir=tmp_path / "snaps",
        gif_path=tmp_path / "run.gif",
    )
    result = optimize(lambda size: lambda image: {"f": torch.mean((image - 0.3) ** 2)}, noise(), cfg)
    names = sorted(p.name for p in (tmp_path / "snaps").iterdir())
    assert names == ["step_00003.png", "step_00006.png", "step_00009.png"]  # 3, 6 | 6+3
    assert result.snapshots == [tmp_path / "snaps" / n for n in names]
    with Image.open(tmp_path / "snaps" / names[0]) as first:
        assert first.size == (32, 32)  # coarse octaves are shown at full size
    with Image.open(tmp_path / "run.gif") as gif:
        assert gif.n_frames == 4  # type: ignore[attr-defined]  # three snapshots + the result
    assert not list(tmp_path.glob("*.tmp"))


def test_same_seed_same_result_with_jitter() -> None:
    net = TinyFeatures()

    def run(seed: int) -> torch.Tensor:
        cfg = quiet(iterations=(5,), optimizer="sgd", lr=0.05, jitter=4, normalize_grad=True, seed=seed)
        return optimize(lambda size: lambda image: {"d": -net(image).b.pow(2).mean()}, noise(), cfg).image

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_config_refuses_jitter_with_lbfgs_and_wrong_iteration_counts() -> None:
    with pytest.raises(ValueError, match="adam or sgd"):
        OptimConfig(jitter=4)
    with pytest.raises(ValueError, match="one per octave"):
        OptimConfig(iterations=(1, 2), octaves=3)
    with pytest.raises(ValueError, match="unknown optimizer"):
        OptimConfig(optimizer="newton")


def test_memory_check_refuses_huge_sizes_and_removes_its_hooks() -> None:
    net = TinyFeatures()
    assert activation_bytes(net, (64, 64)) == 4 * 64 * 64 * (8 + 8 + 8 * 0.25 + 16 * 0.25 * 2)
    ensure_fits(net, (64, 64), "cpu")
    with pytest.raises(ImageTooLargeError, match="GiB"):
        ensure_fits(net, (200_000, 200_000), "cpu")
    assert all(not m._forward_hooks for m in net.modules())


def test_memory_probe_removes_hooks_when_the_network_fails() -> None:
    class Broken(TinyFeatures):
        def forward(self, image: torch.Tensor) -> Taps:
            self.a(image)
            raise RuntimeError("boom")

    net = Broken()
    with pytest.raises(RuntimeError, match="boom"):
        activation_bytes(net, (64, 64))
    assert all(not m._forward_hooks for m in net.modules())
