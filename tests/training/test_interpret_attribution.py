"""Known answers on tiny hand-built nets: gradient saliency, guided backprop, occlusion, hook cleanup."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from training.interpret import activations, class_visualization, guided_backprop, occlusion, saliency
from training.interpret.hooks import capture


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.Tanh(), nn.Linear(6, 3))


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_gradient_saliency_equals_the_analytic_gradient() -> None:
    net = _mlp()
    x = torch.rand(1, 3, 2, 2)
    w1, b1, w2 = net[1].weight, net[1].bias, net[3].weight
    h = torch.tanh(w1 @ x.flatten() + b1)
    expected = w1.T @ (w2[2] * (1 - h**2))
    got = saliency.attribute(net, x, target=2)
    assert got.shape == x.shape
    torch.testing.assert_close(got.flatten(), expected.detach(), rtol=1e-5, atol=1e-6)


def _relu_net() -> nn.Sequential:
    """y = w2 . relu(W1 x): hidden unit 0 is active with a positive weight, unit 1 active with a negative
    weight, unit 2 inactive."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(3, 3, bias=False), nn.ReLU(), nn.Linear(3, 1, bias=False))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0], [-1.0, -1.0, -1.0]]))
        net[3].weight.copy_(torch.tensor([[2.0, -4.0, 5.0]]))
    return net


def test_guided_backprop_zeroes_negative_gradients_at_relus() -> None:
    net = _relu_net()
    x = torch.tensor([1.0, 1.0, 1.0]).view(1, 3, 1, 1)  # hidden pre-activations 3, 2.5, -3
    w1 = net[1].weight.detach()
    vanilla = saliency.attribute(net, x, 0).flatten()
    guided = guided_backprop.attribute(net, x, 0).flatten()
    torch.testing.assert_close(vanilla, w1.T @ torch.tensor([2.0, -4.0, 0.0]))
    # at the ReLU the gradient (2, -4, 5) is masked by the input (1, 1, 0) and by its own sign (1, 0, 1)
    torch.testing.assert_close(guided, w1.T @ torch.tensor([2.0, 0.0, 0.0]))
    assert _hooks(net) == 0


def test_guided_backprop_refuses_inplace_relus_and_nets_without_them() -> None:
    with pytest.raises(ValueError, match="inplace"):
        guided_backprop.attribute(nn.Sequential(nn.Flatten(), nn.ReLU(inplace=True)), torch.rand(1, 3, 1, 1), 0)
    with pytest.raises(ValueError, match="no"):
        guided_backprop.attribute(_mlp(), torch.rand(1, 3, 2, 2), 0)


class OnePixel(nn.Module):
    """Class 0's logit is 10 x the red value of pixel (5, 7); class 1's is 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = 10 * x[:, 0, 5, 7]
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def test_occlusion_finds_the_one_pixel_the_net_reads() -> None:
    image = torch.ones(1, 3, 12, 16)
    drop = occlusion.attribute(OnePixel(), image, target=0, patch=1, stride=1, fill=0.0)
    assert drop.shape == (1, 1, 12, 16)
    assert torch.nonzero(drop[0, 0]).tolist() == [[5, 7]]
    expected = torch.softmax(torch.tensor([10.0, 0.0]), 0)[0] - 0.5
    assert float(drop[0, 0, 5, 7]) == pytest.approx(float(expected), abs=1e-6)
    wide = occlusion.attribute(OnePixel(), image, target=0, patch=3, stride=2, fill=0.0)
    assert wide[0, 0, 5, 7] == wide.max() > 0
    assert wide[0, 0, 0, 0] == 0 and wide[0, 0, 11, 15] == 0


class Boom(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


def _exploding() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), Boom())


@pytest.mark.parametrize("method", ["guided_backprop", "capture", "activations", "channel_objective"])
def test_no_hook_survives_an_exception(method: str) -> None:
    net = _exploding()
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(RuntimeError, match="boom"):
        if method == "guided_backprop":
            guided_backprop.attribute(net, x, 0)
        elif method == "capture":
            capture(net, ["0", "1"], x)
        elif method == "activations":
            activations.attribute(net, x, "1")
        else:
            class_visualization.channel_objective(net, "1", 0)((8, 8))(x)
    assert _hooks(net) == 0


def test_no_hook_survives_a_normal_run_either() -> None:
    net = _relu_net()
    x = torch.rand(1, 3, 1, 1)
    guided_backprop.attribute(net, x, 0)
    capture(net, ["1", "2"], x)
    assert _hooks(net) == 0
