"""Segmentation from saliency, with no segmentation labels.

Simonyan, Vedaldi & Zisserman, Deep Inside Convolutional Networks (2014), section 3.1: the gradient saliency of the
image's class marks where its evidence is; pixels above the 95% saliency quantile seed the foreground colour model
and pixels below the 30% quantile the background one; GrabCut (Rother, Kolmogorov & Blake, SIGGRAPH 2004; OpenCV's
``grabCut``) then cuts along colour edges. The baseline beside it is the saliency map alone, thresholded (Otsu).

Ground truth comes from composed scenes: an object photo shaped by a random smooth silhouette pasted on another
photo's background, so the mask is known exactly (:func:`compose_scene`).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn

from training.classifier import photo_class
from training.images import open_rgb, to_tensor
from training.interpret import saliency

MAX_SIDE = 320  # the photos' size in the shared data; the classifier takes any size


@dataclass(frozen=True)
class SegmentConfig:
    """How saliency becomes GrabCut seeds: the quantiles (of the smoothed map) of sure foreground and background."""

    foreground_quantile: float = 0.95
    background_quantile: float = 0.30
    iterations: int = 5  # GrabCut's EM rounds
    smoothing: float = 0.03  # Gaussian sigma of the saliency map, as a fraction of the longer side

    def __post_init__(self) -> None:
        if not 0.0 < self.background_quantile < self.foreground_quantile < 1.0:
            raise ValueError(
                "need 0 < --background-quantile < --foreground-quantile < 1, "
                f"got {self.background_quantile} and {self.foreground_quantile}"
            )
        if self.iterations < 1:
            raise ValueError(f"--iterations must be at least 1, got {self.iterations}")


@dataclass(frozen=True)
class Segmentation:
    target: int  # the class whose evidence was followed
    saliency: np.ndarray  # [H,W] float32 in [0,1], smoothed
    mask: np.ndarray  # [H,W] bool: GrabCut's foreground
    baseline: np.ndarray  # [H,W] bool: the saliency map thresholded alone


def load_photo(path: Path, max_side: int = MAX_SIDE) -> np.ndarray:
    """RGB uint8 [H,W,3], the longer side at most ``max_side`` (ImageInputError for what is not a picture)."""
    img = open_rgb(Path(path))
    scale = min(1.0, max_side / max(img.size))
    if scale < 1.0:
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def saliency_map(
    model: nn.Module, rgb: np.ndarray, target: int | None = None, smoothing: float = 0.03
) -> tuple[int, np.ndarray]:
    """(class, map): |d score / d pixel| of ``target`` (default: the top-1 class), max over colours, Gaussian
    smoothed and scaled to [0,1]."""
    image = to_tensor(Image.fromarray(rgb))
    if target is None:
        with torch.no_grad():
            target = int(model(image).argmax(dim=1)[0])
    raw = saliency.to_map(saliency.attribute(model, image, target))[0].numpy().astype(np.float32)
    sigma = max(0.5, smoothing * max(raw.shape))
    smooth = cv2.GaussianBlur(raw, (0, 0), sigmaX=sigma, sigmaY=sigma)
    span = float(smooth.max() - smooth.min())
    return target, (smooth - smooth.min()) / span if span > 0 else np.zeros_like(smooth)


def grabcut_mask(rgb: np.ndarray, sal: np.ndarray, cfg: SegmentConfig) -> np.ndarray:
    """GrabCut seeded by the saliency quantiles: above ``foreground_quantile`` sure foreground, below
    ``background_quantile`` sure background, the rest probably background (the cut decides)."""
    high, low = np.quantile(sal, [cfg.foreground_quantile, cfg.background_quantile])
    seeds = np.full(sal.shape, cv2.GC_PR_BGD, np.uint8)
    seeds[sal >= high] = cv2.GC_FGD
    seeds[sal <= low] = cv2.GC_BGD
    if not (seeds == cv2.GC_FGD).any() or not (seeds == cv2.GC_BGD).any():
        return sal >= high  # a flat map: nothing to cut with
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    cv2.setRNGSeed(0)  # GrabCut's k-means starts from OpenCV's generator: the same photo, the same mask
    cv2.grabCut(bgr, seeds, (0, 0, 0, 0), background, foreground, cfg.iterations, cv2.GC_INIT_WITH_MASK)
    return (seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)


def threshold_mask(sal: np.ndarray) -> np.ndarray:
    """The baseline: the saliency map alone, cut at Otsu's threshold."""
    level, _ = cv2.threshold((sal * 255).astype(np.uint8), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return (sal * 255) > level


def segment(model: nn.Module, rgb: np.ndarray, cfg: SegmentConfig, target: int | None = None) -> Segmentation:
    target, sal = saliency_map(model, rgb, target, cfg.smoothing)
    return Segmentation(target, sal, grabcut_mask(rgb, sal, cfg), threshold_mask(sal))


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    union = int((mask | truth).sum())
    return float((mask & truth).sum()) / union if union else 1.0


def cutout(rgb: np.ndarray, mask: np.ndarray) -> Image.Image:
    """The photo with everything outside the mask transparent (RGBA)."""
    return Image.fromarray(np.dstack([rgb, np.where(mask, 255, 0).astype(np.uint8)]), "RGBA")


def silhouette(height: int, width: int, rng: random.Random, area: float = 0.2) -> np.ndarray:
    """A random smooth star-shaped blob covering about ``area`` of the frame, somewhere inside it."""
    radius = math.sqrt(area * height * width / math.pi)
    terms = [(k, rng.uniform(0.05, 0.18), rng.uniform(0, 2 * math.pi)) for k in (2, 3, 5)]
    cy = rng.uniform(radius * 1.1, height - radius * 1.1) if height > 2.2 * radius else height / 2
    cx = rng.uniform(radius * 1.1, width - radius * 1.1) if width > 2.2 * radius else width / 2
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    angle, dist = np.arctan2(y - cy, x - cx), np.hypot(y - cy, x - cx)
    edge = radius * (1 + sum(a * np.cos(k * angle + p) for k, a, p in terms))
    return dist <= edge


def compose_scene(
    object_photo: Path, background_photo: Path, rng: random.Random, size: tuple[int, int] = (240, 320)
) -> tuple[np.ndarray, np.ndarray]:
    """(RGB [H,W,3], true mask [H,W]): the object photo's centre, shaped by a silhouette, on the background."""
    height, width = size
    background = np.asarray(open_rgb(background_photo).resize((width, height), Image.Resampling.BILINEAR))
    mask = silhouette(height, width, rng, area=rng.uniform(0.12, 0.3))
    ys, xs = np.nonzero(mask)
    top, left, box_h, box_w = ys.min(), xs.min(), ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    obj = open_rgb(object_photo)
    side = min(obj.size)
    obj = obj.crop(
        ((obj.width - side) // 2, (obj.height - side) // 2, (obj.width + side) // 2, (obj.height + side) // 2)
    ).resize((box_w, box_h), Image.Resampling.BILINEAR)
    scene = background.copy()
    region = scene[top : top + box_h, left : left + box_w]
    inside = mask[top : top + box_h, left : left + box_w]
    region[inside] = np.asarray(obj)[inside]
    return scene, mask


@dataclass(frozen=True)
class Score:
    grabcut: float  # mean IoU over the scenes
    baseline: float
    scenes: int
    per_scene: tuple[tuple[float, float], ...]  # (grabcut, baseline) each


Scene = tuple[np.ndarray, np.ndarray, Segmentation]  # composed picture, its true mask, what was found


def composed_scores(
    model: nn.Module,
    objects: list[Path],
    backgrounds: list[Path],
    cfg: SegmentConfig,
    count: int = 24,
    seed: int = 0,
    true_class: bool = False,
) -> tuple[Score, list[Scene]]:
    """Mean IoU on ``count`` composed scenes (objects and backgrounds drawn without repeats where possible).

    ``true_class``: follow the pasted object's own class (from its ``imagenet_<wnid>_`` name) instead of the
    classifier's top-1, which may be the background's."""
    if not objects or not backgrounds:
        raise ValueError("composed scenes need object photos (imagenet_*) and background photos (bsds_*)")
    rng = random.Random(seed)
    picks = rng.sample(objects, min(count, len(objects)))
    scenes: list[Scene] = []
    for obj in picks:
        rgb, truth = compose_scene(obj, backgrounds[rng.randrange(len(backgrounds))], rng)
        scenes.append((rgb, truth, segment(model, rgb, cfg, photo_class(obj) if true_class else None)))
    pairs = tuple((iou(s.mask, t), iou(s.baseline, t)) for _, t, s in scenes)
    score = Score(float(np.mean([p[0] for p in pairs])), float(np.mean([p[1] for p in pairs])), len(pairs), pairs)
    return score, scenes


def mask_picture(mask: np.ndarray) -> Image.Image:
    return Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).convert("RGB")


def heat_picture(sal: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(sal, 0, 1) * 255).astype(np.uint8)).convert("RGB")


def shown_cutout(rgb: np.ndarray, mask: np.ndarray) -> Image.Image:
    """The cut-out over a mid-grey ground, for a figure (the PNG the CLI writes keeps real transparency)."""
    return Image.fromarray(np.where(mask[..., None], rgb, 128).astype(np.uint8))
