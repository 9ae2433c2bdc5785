"""What the interpretability report runs on: its settings, the photos as the classifier sees them, and the
helpers every section shares (training/interpret/report.py runs the sections)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from training.classifier import (
    EfficientNetLite0,
    imagenet_classes,
    load_classifier,
)
from training.features import VGGFeatures, load_vgg
from training.images import list_images, save_png, to_image
from training.interpret.page import Figure

VIS_CLASSES = (130, 327, 945)  # flamingo, starfish, bell pepper: distinctive colours and shapes
VIS_CHANNEL = ("_blocks.10", 7)
PATCH_LAYERS = ("_blocks.2", "_blocks.4")
VGG_TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


@dataclass(frozen=True)
class ReportConfig:
    """What the report runs on; built by the CLI."""

    out: Path
    photos: Path | None = None  # folder of imagenet_<wnid>_<label>.jpg photos
    max_photos: int = 200
    checkpoint: Path | None = None  # style network checkpoint; its section is skipped without one
    classifier_weights: Path | None = None
    vgg_weights: Path | None = None
    iterations: int = 100  # class visualization and feature inversion steps
    scenes: int = 24  # composed scenes (known masks) that score segmentation from saliency
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.max_photos < 10:
            raise ValueError("--max-photos must be >= 10 (neighbours and t-SNE need a set)")
        if self.iterations < 1:
            raise ValueError("--iterations must be >= 1")
        if self.scenes < 1:
            raise ValueError("--scenes must be >= 1")
        if self.photos is not None and not self.photos.is_dir():
            raise ValueError(f"{self.photos}: photo folder not found")


@dataclass
class PhotoSet:
    """The photos as the classifier sees them, with its outputs."""

    paths: list[Path]
    images: torch.Tensor  # [N,3,224,224]
    truth: list[int | None]
    logits: torch.Tensor  # [N,1000]
    embeddings: torch.Tensor  # [N,1280]


def select_photos(folder: Path, limit: int) -> list[Path]:
    """Up to ``limit`` imagenet_* photos, evenly spread over the sorted list (so over the classes)."""
    photos = [p for p in list_images(folder) if p.name.startswith("imagenet_")]
    if not photos:
        raise ValueError(f"{folder}: no imagenet_<wnid>_<label>.jpg photos")
    step = max(1, len(photos) // limit)
    return photos[::step][:limit]


class ReportBase:
    """The models, the photos and the helpers every section uses."""

    def __init__(self, cfg: ReportConfig) -> None:
        self.cfg = cfg
        self.dir = cfg.out / "figures"
        self.classes = imagenet_classes()
        self.model: EfficientNetLite0 = load_classifier(cfg.classifier_weights)
        self.vgg: VGGFeatures = load_vgg(VGG_TAPS, cfg.vgg_weights)
        self.photos: PhotoSet | None = None
        self.notes: list[str] = []

    # helpers -----------------------------------------------------------------------------------
    def save(self, name: str, picture: Image.Image, caption: str) -> Figure:
        save_png(picture, self.dir / f"{name}.png")
        return Figure(f"figures/{name}.png", caption)

    def name(self, index: int) -> str:
        return self.classes[index].label

    def queries(self, count: int) -> list[int]:
        assert self.photos is not None
        n = len(self.photos.paths)
        return [round(i * (n - 1) / max(count - 1, 1)) for i in range(count)]

    def query(self) -> int:
        """A cat photo if the set has one (the lecture's example), else the first photo."""
        assert self.photos is not None
        cats = [i for i, t in enumerate(self.photos.truth) if t is not None and 281 <= t <= 285]
        return cats[0] if cats else 0

    def thumbs(self, indices: list[int]) -> list[Image.Image]:
        assert self.photos is not None
        return [to_image(self.photos.images[i : i + 1]) for i in indices]
