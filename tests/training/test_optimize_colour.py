"""Colour preservation for the Gatys tool: exact statistics, no network."""

from __future__ import annotations

import pytest
import torch

from training.optimize.colour import luminance, luminance_like, match_colours, recolour, to_rgb, to_yiq


def picture(seed: int, tint: tuple[float, float, float]) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    base = 0.3 * torch.rand(1, 1, 24, 24, generator=gen) + 0.3 * torch.rand(1, 3, 24, 24, generator=gen)
    return (base + torch.tensor(tint).view(1, 3, 1, 1)).clamp(0, 1)


def test_yiq_round_trip() -> None:
    rgb = picture(0, (0.2, 0.1, 0.3))
    torch.testing.assert_close(to_rgb(to_yiq(rgb)), rgb, atol=1e-5, rtol=0)


def test_colour_matching_gives_the_reference_mean_and_covariance() -> None:
    source, reference = picture(1, (0.4, 0.1, 0.0)), picture(2, (0.0, 0.2, 0.4))
    out = match_colours(source, reference)
    flat_o, flat_r = out.reshape(3, -1), reference.reshape(3, -1)
    torch.testing.assert_close(flat_o.mean(1), flat_r.mean(1), atol=1e-3, rtol=0)
    torch.testing.assert_close(torch.cov(flat_o), torch.cov(flat_r), atol=2e-3, rtol=0)


def test_luminance_transfer_keeps_the_content_chroma() -> None:
    content, style = picture(3, (0.3, 0.1, 0.0)), picture(4, (0.0, 0.0, 0.5))
    grey = luminance_like(style, content)
    assert torch.equal(grey[:, 0], grey[:, 1])  # the network sees grey
    assert float(luminance(grey).mean()) == pytest.approx(float(luminance(content).mean()), abs=1e-3)
    result = recolour(grey, content)
    torch.testing.assert_close(to_yiq(result)[:, 1:], to_yiq(content)[:, 1:], atol=2e-2, rtol=0)
