"""Colour preservation for style transfer: Gatys, Bethge, Hertzmann & Shechtman,
Preserving Color in Neural Artistic Style Transfer (2016).

Luminance-only transfer works on the YIQ luminance and puts the content's I/Q back afterwards;
colour matching gives the style image the content's colour mean and covariance before transfer.
"""

from __future__ import annotations

import torch

from training.optimize.engine import resize

_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def to_yiq(rgb: torch.Tensor) -> torch.Tensor:
    """[1,3,H,W] RGB -> [1,3,H,W] YIQ."""
    return torch.einsum("ij,bjhw->bihw", _RGB_TO_YIQ.to(rgb), rgb)


def to_rgb(yiq: torch.Tensor) -> torch.Tensor:
    """[1,3,H,W] YIQ -> [1,3,H,W] RGB (not clipped)."""
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_RGB_TO_YIQ).to(yiq), yiq)


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """[1,3,H,W] RGB -> [1,1,H,W] Y."""
    return to_yiq(rgb)[:, :1]


def grey(y: torch.Tensor) -> torch.Tensor:
    """Luminance as a three-channel grey image (what the loss network sees)."""
    return y.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def luminance_like(source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Grey image of ``source``'s luminance, shifted and scaled to ``reference``'s mean and spread."""
    ys, yr = luminance(source), luminance(reference)
    return grey((ys - ys.mean()) / (ys.std() + 1e-6) * yr.std() + yr.mean())


def recolour(result: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
    """``result``'s luminance with ``colours``' chroma (I/Q), back in RGB [0,1]."""
    iq = to_yiq(resize(colours, tuple(result.shape[-2:])))[:, 1:]  # type: ignore[arg-type]
    return to_rgb(torch.cat([luminance(result), iq], 1)).clamp(0, 1)


def match_colours(source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``source`` linearly transformed to ``reference``'s RGB mean and covariance (symmetric roots)."""

    def stats(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = img.reshape(3, -1).double()
        mean = flat.mean(1, keepdim=True)
        centred = flat - mean
        return mean, centred @ centred.T / flat.shape[1] + 1e-5 * torch.eye(3, dtype=flat.dtype)

    def sqrtm(cov: torch.Tensor, power: float) -> torch.Tensor:
        vals, vecs = torch.linalg.eigh(cov)
        return vecs @ torch.diag(vals.clamp_min(1e-8) ** power) @ vecs.T

    mu_s, cov_s = stats(source)
    mu_r, cov_r = stats(reference)
    transform = sqrtm(cov_r, 0.5) @ sqrtm(cov_s, -0.5)
    out = transform @ (source.reshape(3, -1).double() - mu_s) + mu_r
    return out.reshape(source.shape).to(source.dtype).clamp(0, 1)
