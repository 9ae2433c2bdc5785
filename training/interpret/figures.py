"""Drawing for the report's figures: heat maps, captioned rows, scatter plots; PIL only, no plotting library."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from training.images import to_image

PALETTE = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)


def font(size: int = 14) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def normalize(values: torch.Tensor) -> torch.Tensor:
    """Scale to [0,1] by the min and max."""
    lo, hi = values.min(), values.max()
    return (values - lo) / (hi - lo + 1e-12)


def colormap(values: torch.Tensor) -> Image.Image:
    """[H,W] values in [0,1] -> RGB picture, dark blue to yellow (a viridis-like ramp)."""
    stops = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], float)
    v = values.detach().cpu().clamp(0, 1).numpy() * (len(stops) - 1)
    low = np.floor(v).astype(int).clip(0, len(stops) - 2)
    frac = (v - low)[..., None]
    rgb = stops[low] * (1 - frac) + stops[low + 1] * frac
    return Image.fromarray(rgb.astype(np.uint8))


def overlay(image: torch.Tensor, heat: torch.Tensor, alpha: float = 0.55) -> Image.Image:
    """A [1,3,H,W] picture with a [H,W] heat map in [0,1] blended over it."""
    base = to_image(image)
    return Image.blend(base, colormap(heat).resize(base.size, Image.Resampling.BILINEAR), alpha)


def signed(values: torch.Tensor, quantile: float = 0.99) -> torch.Tensor:
    """[1,3,H,W] signed values -> [1,3,H,W] in [0,1], zero at mid-grey, the top 1% of magnitudes clipped."""
    scale = torch.quantile(values.abs().flatten().float(), quantile)
    return (0.5 + 0.5 * values / (scale + 1e-12)).clamp(0, 1)


def captioned_row(
    pictures: Sequence[Image.Image], captions: Sequence[str], cell: int = 192, pad: int = 6, text: int = 34
) -> Image.Image:
    """Pictures side by side, each fitted into a cell with up to two lines of caption under it."""
    sheet = Image.new("RGB", (len(pictures) * (cell + pad) + pad, cell + text + 2 * pad), "white")
    draw = ImageDraw.Draw(sheet)
    for n, (picture, caption) in enumerate(zip(pictures, captions, strict=True)):
        thumb = picture.copy()
        scale = cell / max(thumb.size)
        thumb = thumb.resize(
            (max(1, round(thumb.width * scale)), max(1, round(thumb.height * scale))),
            Image.Resampling.NEAREST if scale > 3 else Image.Resampling.LANCZOS,
        )
        x = pad + n * (cell + pad)
        sheet.paste(thumb, (x + (cell - thumb.width) // 2, pad + (cell - thumb.height) // 2))
        for line, part in enumerate(_wrap(caption, cell)[:2]):
            draw.text((x, pad + cell + 2 + 15 * line), part, fill="black", font=font(12))
    return sheet


def _wrap(text: str, width: int, char: int = 7) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width // char:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line]


def stack(rows: Sequence[Image.Image]) -> Image.Image:
    """Rows one under the other, left-aligned on white."""
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    y = 0
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height
    return sheet


def _to_canvas(points: np.ndarray, size: int, margin: int) -> np.ndarray:
    lo, hi = points.min(axis=0), points.max(axis=0)
    return margin + (points - lo) / (hi - lo + 1e-12) * (size - 2 * margin)


def image_scatter(points: np.ndarray, thumbs: Sequence[Image.Image], size: int = 1000, thumb: int = 40) -> Image.Image:
    """Thumbnails centred at their 2-D positions (later ones on top)."""
    canvas = Image.new("RGB", (size, size), "white")
    xy = _to_canvas(points, size, thumb)
    for (x, y), picture in zip(xy, thumbs, strict=True):
        small = picture.copy()
        small.thumbnail((thumb, thumb), Image.Resampling.LANCZOS)
        canvas.paste(small, (int(x) - small.width // 2, int(y) - small.height // 2))
    return canvas


def label_scatter(
    points: np.ndarray, groups: Sequence[str], size: int = 700, labels: Sequence[str] | None = None, radius: int = 4
) -> Image.Image:
    """Dots coloured by group with a legend; optional text next to each dot."""
    names = sorted(set(groups))
    colours = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(names)}
    legend = 22 * len(names) + 10
    canvas = Image.new("RGB", (size, size + legend), "white")
    draw = ImageDraw.Draw(canvas)
    xy = _to_canvas(points, size, 40)
    for n, ((x, y), group) in enumerate(zip(xy, groups, strict=True)):
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colours[group])
        if labels is not None and labels[n]:
            draw.text((x + radius + 2, y - 7), labels[n], fill="black", font=font(13))
    for i, g in enumerate(names):
        y = size + 5 + 22 * i
        draw.rectangle((10, y + 3, 24, y + 17), fill=colours[g])
        draw.text((32, y + 2), g, fill="black", font=font(14))
    return canvas
