"""The conditional instance norm network: exact one-hot styles, linear blends, any input size."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from service.contract import MEMORY_CHANNELS
from training.checkpoint import CheckpointError, build_from_checkpoint, copy_matching
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


def random_norm(channels: int, styles: int, seed: int) -> CondInstanceNorm:
    torch.manual_seed(seed)
    norm = CondInstanceNorm(channels, styles)
    with torch.no_grad():
        norm.gamma.normal_()
        norm.beta.normal_()
    return norm


def test_blend_mixes_gamma_and_beta_linearly() -> None:
    norm = random_norm(5, 3, seed=1)
    x = torch.randn(1, 5, 6, 7)
    w = torch.tensor([[0.2, 0.5, 0.3]])
    gamma = 0.2 * norm.gamma[0] + 0.5 * norm.gamma[1] + 0.3 * norm.gamma[2]
    beta = 0.2 * norm.beta[0] + 0.5 * norm.beta[1] + 0.3 * norm.beta[2]
    normed = torch.nn.functional.instance_norm(x)
    expected = normed * gamma[None, :, None, None] + beta[None, :, None, None]
    torch.testing.assert_close(norm(x, w), expected, rtol=1e-5, atol=1e-5)


def test_each_sample_of_a_batch_gets_its_own_blend() -> None:
    """The norm folds the batch into the channels for one affine instance norm: each sample keeps its mix."""
    norm = random_norm(4, 3, seed=2)
    x = torch.randn(3, 4, 5, 6)
    w = torch.softmax(torch.randn(3, 3), dim=1)
    for i in range(3):
        alone = norm(x[i : i + 1], w[i : i + 1])
        torch.testing.assert_close(norm(x, w)[i : i + 1], alone, rtol=1e-5, atol=1e-5)


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


FAST = NetConfig(
    num_styles=3,
    widths=(4, 8),
    res_blocks=1,
    in_kernel=3,
    out_kernel=3,
    stem_stride=2,
    separable=True,
    padding="edges",
    decoder="project_first",
    output="transposed",
)


@pytest.mark.parametrize("size", [(31, 45), (64, 64), (17, 100)])
def test_realtime_design_keeps_any_size_and_range(size: tuple[int, int]) -> None:
    net = perturbed(StyleNet(FAST))
    frame = torch.rand(1, 3, *size)
    with torch.no_grad():
        out = net.stylize_any_size(frame, torch.tensor([[0.2, 0.5, 0.3]]))
    assert out.shape == frame.shape
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0


def test_transposed_output_starts_without_checkerboard() -> None:
    net = perturbed(StyleNet(FAST))
    with torch.no_grad():
        out = net(torch.rand(1, 3, 32, 32), torch.tensor([[0.0, 1.0, 0.0]]))
    torch.testing.assert_close(out[..., ::2, ::2], out[..., 1::2, 1::2])
    torch.testing.assert_close(out[..., ::2, ::2], out[..., 1::2, ::2])


def test_edges_padding_reflects_only_at_the_first_convolution() -> None:
    net = StyleNet(FAST)
    reflects = [name for name, m in net.named_modules() if isinstance(m, torch.nn.ReflectionPad2d)]
    assert reflects == ["down.0.conv.pad"]
    assert StyleNet(TINY).config.padding == "reflect"
    assert sum(isinstance(m, torch.nn.ReflectionPad2d) for m in StyleNet(TINY).modules()) > 3


def test_project_first_decoder_projects_at_the_low_resolution() -> None:
    net = StyleNet(FAST)
    seen: dict[str, tuple[int, ...]] = {}
    hooks = [
        m.register_forward_hook(lambda _m, i, _o, n=n: seen.__setitem__(n, tuple(i[0].shape)))
        for n, m in net.named_modules()
        if n in ("up.0.project", "up.0.depthwise")
    ]
    try:
        net(torch.rand(1, 3, 32, 32), torch.tensor([[1.0, 0, 0]]))
    finally:
        for h in hooks:
            h.remove()
    assert seen["up.0.project"] == (1, 8, 8, 8)  # 8 channels at 1/4 size: before the upsample
    assert seen["up.0.depthwise"] == (1, 4, 16, 16)  # projected to 4, then upsampled


def test_checkpoints_of_the_earlier_design_keep_their_layout() -> None:
    old = {
        "num_styles": 2,
        "widths": [16, 32, 64],
        "res_blocks": 5,
        "in_kernel": 3,
        "out_kernel": 3,
        "stem_stride": 2,
        "separable": True,
    }
    cfg = NetConfig.from_json(old)
    assert (cfg.padding, cfg.decoder, cfg.output) == ("reflect", "upsample_first", "conv")
    assert NetConfig.from_json(cfg.to_json()) == cfg


def test_new_options_reject_bad_combinations() -> None:
    with pytest.raises(ValueError, match="padding"):
        NetConfig(num_styles=1, padding="zeros")
    with pytest.raises(ValueError, match="separable"):
        NetConfig(num_styles=1, decoder="project_first")
    with pytest.raises(ValueError, match="stem_stride 2"):
        NetConfig(num_styles=1, output="transposed")


def test_a_memory_starts_at_zero_so_a_grown_network_paints_the_same() -> None:
    source = perturbed(StyleNet(FAST))
    grown = StyleNet(NetConfig.from_json(FAST.to_json() | {"memory": True}))
    copied = copy_matching(grown, source)
    assert len(copied) == len(source.state_dict())  # everything but the memory's projections
    frame, weights = torch.rand(1, 3, 32, 48), torch.tensor([[0.0, 1.0, 0.0]])
    memory = torch.rand(1, MEMORY_CHANNELS, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(grown(frame, weights, memory), source(frame, weights))
        for conv in grown.remember:
            conv.weight.normal_(std=0.5)
        assert (grown(frame, weights, memory) - source(frame, weights)).abs().max() > 1e-3  # it reaches the output
        torch.testing.assert_close(grown(frame, weights, torch.zeros_like(memory)), grown(frame, weights))


def test_a_checkpoint_of_a_design_this_version_lacks_is_refused_by_name() -> None:
    ckpt = {"net_config": FAST.to_json() | {"gate_head": 8}, "state_dict": {}, "styles": ["a", "b", "c"]}
    with pytest.raises(CheckpointError, match="gate_head"):
        build_from_checkpoint(ckpt)


def test_a_gate_carries_the_memory_at_full_size_where_trusted_and_starts_shut() -> None:
    source = perturbed(StyleNet(FAST))
    net = StyleNet(NetConfig.from_json(FAST.to_json() | {"memory": True, "memory_gate": True}))
    copy_matching(net, source)
    frame, weights = torch.rand(1, 3, 32, 48), torch.tensor([[0.0, 1.0, 0.0]])
    carried, trust = torch.rand(1, 3, 32, 48), torch.ones(1, 1, 32, 48)
    trust[..., :16] = 0.0
    memory = torch.cat([carried * trust, trust], dim=1)
    assert net.gate is not None
    with torch.no_grad():
        torch.testing.assert_close(net(frame, weights, memory), source(frame, weights))  # shut: paints the same
        net.gate.bias.fill_(1.0)  # wide open: the carried pixels where trusted, unpooled, the fresh painting elsewhere
        out = net(frame, weights, memory)
    torch.testing.assert_close(out[..., 16:], carried[..., 16:])
    torch.testing.assert_close(out[..., :16], source(frame, weights)[..., :16])
    with pytest.raises(ValueError, match="needs memory"):
        NetConfig(num_styles=1, memory_gate=True)


def test_the_gate_and_a_bilinear_output_paint_as_one_conv_with_the_same_numbers() -> None:
    net = StyleNet(NetConfig.from_json(tier_config("realtime", 3).to_json() | {"memory": True, "memory_gate": True}))
    assert net.gate is not None
    torch.manual_seed(0)
    with torch.no_grad():
        for p in net.gate.parameters():
            p.copy_(torch.randn(p.shape))
        x = torch.rand(2, net.gate.in_channels, 12, 16)
        out, say = net._paint_and_say(x, net.gate)
        torch.testing.assert_close(out, net.squash(net.out(x)))
        torch.testing.assert_close(say, net.gate(x))
    assert out.shape == (2, 3, 24, 32) and say.shape == (2, 1, 12, 16)


def test_the_memory_enters_every_decoder_stage_at_its_size() -> None:
    """Each stage is handed the average of the memory over its own block (computed by halving the finer one)."""
    widths = (4, 8, 16)
    net = StyleNet(NetConfig.from_json(TINY.to_json() | {"memory": True, "widths": widths}))
    seen: list[torch.Tensor] = []
    hooks = [c.register_forward_hook(lambda _m, i, _o: seen.append(i[0])) for c in net.remember]
    memory = torch.rand(1, MEMORY_CHANNELS, 32, 32)
    try:
        net(torch.rand(1, 3, 32, 32), torch.tensor([[1.0, 0, 0]]), memory)
    finally:
        for h in hooks:
            h.remove()
    factors = [TINY.stem_stride * 2 ** (len(widths) - 2 - k) for k in range(len(widths) - 1)]
    assert [tuple(t.shape) for t in seen] == [(1, MEMORY_CHANNELS, 32 // f, 32 // f) for f in factors]
    for held, factor in zip(seen, factors, strict=True):
        torch.testing.assert_close(held, F.avg_pool2d(memory, factor))


def test_a_network_without_a_memory_refuses_one() -> None:
    with pytest.raises(ValueError, match="no memory"):
        StyleNet(TINY)(torch.rand(1, 3, 32, 32), torch.tensor([[1.0, 0, 0]]), torch.rand(1, MEMORY_CHANNELS, 32, 32))
