"""The receptive field of known stacks, by hand and by the support of a gradient."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from training.classifier import Conv2dSame
from training.interpret.patches import Geometry, receptive_field, top_patches, trace_receptive_field


def _ones(net: nn.Module) -> nn.Module:
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(1.0 if p.dim() > 1 else 0.0)
    return net.eval()


def _support(net: nn.Module, size: tuple[int, int], i: int, j: int) -> tuple[int, int, int, int]:
    """Bounding box (top, left, bottom, right) of the input pixels unit (i, j) depends on."""
    dtype = next(net.parameters()).dtype
    x = torch.full((1, 3, *size), 0.01, dtype=dtype, requires_grad=True)  # small: every ReLU6 stays linear
    net(x)[0, 0, i, j].backward()
    assert x.grad is not None
    rows, cols = torch.nonzero(x.grad[0].abs().sum(0), as_tuple=True)
    return int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1


def test_hand_computed_stack() -> None:
    # conv3 p1 -> conv3 s2 p1 -> pool2 s2 -> conv5 p0: jumps 1,1,2,4,4; sizes 1,3,5,7,23; starts 0,-1,-2,-2,-2
    rf = receptive_field([Geometry(3, 1, 1), Geometry(3, 2, 1), Geometry(2, 2, 0), Geometry(5, 1, 0)])
    assert (rf.size, rf.jump, rf.start) == (23, 4, -2)
    assert rf.span(3) == (10, 33)
    assert rf.span(0, limit=40) == (0, 21)
    dilated = receptive_field([Geometry(3, 1, 2, dilation=2), Geometry(3, 2, 1)])
    assert (dilated.size, dilated.jump, dilated.start) == (7, 2, -3)


def _stack() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 2, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(2, 2, 3, stride=2, padding=1),
        nn.AvgPool2d(2),
        nn.Conv2d(2, 1, 5),
    )


def test_traced_field_matches_the_hand_computation_and_the_gradient_support() -> None:
    net = _ones(_stack())
    rows, cols = trace_receptive_field(net, "4", (40, 36))
    assert (rows.size, rows.jump, rows.start) == (23, 4, -2) and rows == cols
    for i, j in [(0, 0), (2, 3), (5, 4)]:
        top, bottom = rows.span(i, 40)
        left, right = cols.span(j, 36)
        assert _support(net, (40, 36), i, j) == (top, left, bottom, right)


@pytest.mark.parametrize("size", [(33, 32), (40, 37)])
def test_tensorflow_same_padding_is_traced_exactly_for_odd_and_even_sizes(size: tuple[int, int]) -> None:
    net = _ones(nn.Sequential(Conv2dSame(3, 2, 3, 2), nn.ReLU6(), Conv2dSame(2, 2, 5, 2), Conv2dSame(2, 1, 3, 1)))
    net = net.double()
    rows, cols = trace_receptive_field(net, "3", size)
    out_h, out_w = -(-size[0] // 4), -(-size[1] // 4)
    for i in range(out_h):
        for j in range(out_w):
            top, bottom = rows.span(i, size[0])
            left, right = cols.span(j, size[1])
            box = _support(net, size, i, j)
            assert box == (top, left, bottom, right), (i, j)


def test_parallel_branches_are_refused() -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(3, 3, 3, stride=2, padding=1)
            self.b = nn.Conv2d(3, 3, 1, stride=2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a(x) + self.b(x)

    with pytest.raises(ValueError, match="chain"):
        trace_receptive_field(Branchy(), "b", (16, 16))


def test_top_patches_crop_the_receptive_field_of_the_strongest_unit() -> None:
    net = _ones(_stack())
    images = torch.zeros(3, 3, 40, 36)
    images[1, :, 20, 18] = 1.0  # the only bright pixel in the set
    (patch,) = top_patches(net, "4", images, channels=[0], k=1)[0]
    assert patch.image == 1 and patch.value > 0
    top, left, bottom, right = patch.box
    assert top <= 20 < bottom and left <= 18 < right and bottom - top == 23 and right - left == 23
