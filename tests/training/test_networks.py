"""The conditional instance norm network: exact one-hot styles, linear blends, any input size."""

from __future__ import annotations

import pytest
import torch

from training.networks import CondInstanceNorm, NetConfig, StyleNet, count_parameters, tier_config

from .conftest import TINY, perturbed


def single_style_copy(net: StyleNet, index: int) -> StyleNet:
    """A one-style network holding row ``index`` of every gamma/beta."""
    single = StyleNet(NetConfig.from_json(net.config.to_json() | {"num_styles": 1}))
    state = {k: (v[index : index + 1] if k.endswith((".gamma", ".beta")) else v) for k, v in net.state_dict().items()}
    single.load_state_dict(state)
    return single.eval()


def test_one_hot_equals_the_single_style_network(tiny_net: StyleNet) -> None:
    frame = torch.rand(2, 3, 32, 40)
    for i in range(TINY.num_styles):
        weights = torch.nn.functional.one_hot(torch.tensor([i, i]), TINY.num_styles).float()
        with torch.no_grad():
            expected = single_style_copy(tiny_net, i)(frame, torch.ones(2, 1))
            torch.testing.assert_close(tiny_net(frame, weights), expected, rtol=0, atol=1e-6)


def test_styles_differ(tiny_net: StyleNet) -> None:
    frame = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        a = tiny_net(frame, torch.tensor([[1.0, 0, 0]]))
        b = tiny_net(frame, torch.tensor([[0, 1.0, 0]]))
    assert (a - b).abs().max() > 1e-2


def test_blend_mixes_gamma_and_beta_linearly() -> None:
    torch.manual_seed(1)
    norm = CondInstanceNorm(5, 3)
    with torch.no_grad():
        norm.gamma.normal_()
        norm.beta.normal_()
    x = torch.randn(1, 5, 6, 7)
    w = torch.tensor([[0.2, 0.5, 0.3]])
    gamma = 0.2 * norm.gamma[0] + 0.5 * norm.gamma[1] + 0.3 * norm.gamma[2]
    beta = 0.2 * norm.beta[0] + 0.5 * norm.beta[1] + 0.3 * norm.beta[2]
    normed = torch.nn.functional.instance_norm(x)
    expected = normed * gamma[None, :, None, None] + beta[None, :, None, None]
    torch.testing.assert_close(norm(x, w), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [(17, 23), (31, 45), (8, 8), (3, 5)])
def test_any_input_size_returns_the_same_size(tiny_net: StyleNet, size: tuple[int, int]) -> None:
    frame = torch.rand(1, 3, *size)
    with torch.no_grad():
        out = tiny_net.stylize_any_size(frame, torch.tensor([[0.3, 0.3, 0.4]]))
    assert out.shape == frame.shape
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0


def test_tiers_have_the_documented_sizes() -> None:
    quality = StyleNet(tier_config("quality", 7))
    realtime = StyleNet(tier_config("realtime", 7))
    assert 1.6e6 < count_parameters(quality) < 1.8e6  # Johnson et al. size
    assert count_parameters(realtime) < 0.1 * count_parameters(quality)
    assert realtime.config.size_multiple == 8 and quality.config.size_multiple == 4


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="num_styles"):
        NetConfig(num_styles=0)
    with pytest.raises(ValueError, match="odd"):
        NetConfig(num_styles=1, in_kernel=4)
    with pytest.raises(ValueError, match="unknown tier"):
        tier_config("huge", 2)


def test_pixel_shuffle_output_starts_without_checkerboard() -> None:
    net = perturbed(StyleNet(TINY))
    with torch.no_grad():
        out = net(torch.rand(1, 3, 32, 32), torch.tensor([[1.0, 0, 0]]))
    # ICNR: the four sub-pixels of each 2x2 cell start out identical
    torch.testing.assert_close(out[..., ::2, ::2], out[..., 1::2, 1::2])
