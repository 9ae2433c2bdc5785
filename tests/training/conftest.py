"""Tiny style networks and picture folders for the training tests (no shared data needed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from training.export import export_network
from training.networks import NetConfig, StyleNet

DATA = Path(os.environ.get("LIVESTYLE_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
TINY = NetConfig(num_styles=3, widths=(4, 8), res_blocks=1, in_kernel=3, out_kernel=3, stem_stride=2, separable=True)


def perturbed(net: StyleNet, seed: int = 0) -> StyleNet:
    """Give every gamma/beta row different values so styles really differ."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for norm in net.norms():
            norm.gamma.copy_(1 + 0.5 * torch.randn(norm.gamma.shape, generator=gen))
            norm.beta.copy_(0.5 * torch.randn(norm.beta.shape, generator=gen))
    return net.eval()


@pytest.fixture(scope="session")
def tiny_net() -> StyleNet:
    torch.manual_seed(0)
    return perturbed(StyleNet(TINY))


@pytest.fixture(scope="session")
def tiny_onnx(tiny_net: StyleNet, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """The tiny net exported once: (path, parity error)."""
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    return path, export_network(tiny_net, path)


def _write(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array.astype(np.uint8)).save(path)
    return path


@pytest.fixture
def picture_dirs(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A content folder of 3 small photos-like images and two style images (stripes, checks)."""
    rng = np.random.default_rng(0)
    content = tmp_path / "content"
    content.mkdir()
    y, x = np.mgrid[0:80, 0:96]
    for i in range(3):
        base = np.stack([x * 2 + 40 * i, y * 3, (x + y) % 255], axis=-1) % 255
        _write(content / f"photo_{i}.png", base + rng.integers(0, 20, base.shape))
    styles = tmp_path / "styles"
    styles.mkdir()
    stripes = np.zeros((64, 64, 3))
    stripes[:, ::8] = (255, 200, 0)
    checks = ((x[:64, :64] // 8 + y[:64, :64] // 8) % 2)[..., None] * np.array([20, 60, 240])
    return content, [_write(styles / "stripes.png", stripes), _write(styles / "checks.png", checks)]


def needs_data(*parts: str) -> Path:
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (set LIVESTYLE_DATA)")
    return path
