"""The report's "Segmentation from saliency" section: photos cut out, and the score on composed scenes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from torch import nn

from training.interpret import figures, segment

PHOTOS_CAPTION = (
    "A row per photo: the photo and its top-1 class, the saliency map, the mask GrabCut cuts from its "
    "seeds, the cut-out. An object that stands out from a plain ground comes out whole; in clutter, or "
    "a face filling the frame, only the most salient part or the wrong region: the lecture's 'nicely "
    "chosen examples'."
)
COMPOSED_CAPTION = "Composed scenes with known masks: GrabCut against the thresholded saliency map."


@dataclass(frozen=True)
class Study:
    intro: str
    note: str
    photos: Image.Image  # the figure of real photos
    composed: Image.Image  # the figure of composed scenes


def photo_rows(
    model: nn.Module, photos: list[Path], cfg: segment.SegmentConfig, name: Callable[[int], str]
) -> Image.Image:
    rows = []
    for path in photos:
        rgb = segment.load_photo(path)
        found = segment.segment(model, rgb, cfg)
        pictures = [
            Image.fromarray(rgb),
            segment.heat_picture(found.saliency),
            segment.mask_picture(found.mask),
            segment.shown_cutout(rgb, found.mask),
        ]
        captions = [name(found.target), "gradient saliency (smoothed)", "GrabCut mask", "cut-out"]
        rows.append(figures.captioned_row(pictures, captions, 160))
    return figures.stack(rows)


def composed_rows(scenes: list[segment.Scene], name: Callable[[int], str]) -> Image.Image:
    return figures.stack(
        [
            figures.captioned_row(
                [
                    Image.fromarray(rgb),
                    segment.mask_picture(truth),
                    segment.heat_picture(found.saliency),
                    segment.mask_picture(found.mask),
                    segment.mask_picture(found.baseline),
                ],
                [
                    "composed scene",
                    "true mask",
                    f"saliency ({name(found.target)})",
                    f"GrabCut: IoU {segment.iou(found.mask, truth):.2f}",
                    f"threshold: IoU {segment.iou(found.baseline, truth):.2f}",
                ],
                160,
            )
            for rgb, truth, found in scenes
        ]
    )


def study(
    model: nn.Module, shown: list[Path], photos: list[Path], scenes: int, seed: int, name: Callable[[int], str]
) -> Study:
    """``shown``: the photos cut out in the figure; ``photos``: the folder's photos the scenes are composed from
    (objects: imagenet_*, backgrounds: the others)."""
    cfg = segment.SegmentConfig()
    objects = [p for p in photos if p.name.startswith("imagenet_")]
    backgrounds = [p for p in photos if not p.name.startswith("imagenet_")] or objects
    top, made = segment.composed_scores(model, objects, backgrounds, cfg, scenes, seed)
    true, _ = segment.composed_scores(model, objects, backgrounds, cfg, scenes, seed, true_class=True)
    intro = (
        f"No segmentation labels: the classifier's gradient saliency for its top class, smoothed; pixels "
        f"above its {cfg.foreground_quantile:.0%} quantile seed GrabCut's foreground, below "
        f"{cfg.background_quantile:.0%} its background (Simonyan et al. 2014, section 3.1; Rother et al. "
        f"2004). Measured on {top.scenes} composed scenes (an object photo cut by a random silhouette, "
        f"pasted on another photo), mean IoU with the true mask: GrabCut {top.grabcut:.2f}, the saliency "
        f"thresholded alone (Otsu) {top.baseline:.2f}; following the pasted object's own class instead of "
        f"the top-1: GrabCut {true.grabcut:.2f}, threshold {true.baseline:.2f}. It fails where the "
        "background carries stronger class evidence than the object (the top-1 class is the background's), "
        "and on objects whose colours match the ground: saliency says where, GrabCut needs colour edges."
    )
    note = (
        f"Segmentation from saliency, {top.scenes} composed scenes: mean IoU {top.grabcut:.2f} (GrabCut) vs "
        f"{top.baseline:.2f} (saliency thresholded alone)."
    )
    return Study(intro, note, photo_rows(model, shown, cfg, name), composed_rows(made[:6], name))
