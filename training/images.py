"""Reading pictures for training and the offline tools, as contract tensors (RGB in [0,1])."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from service.contract import frame_to_image, image_to_frame

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class ImageInputError(ValueError):
    """A picture or folder given as input cannot be used."""


def open_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError as exc:
        raise ImageInputError(f"{path}: no such file") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageInputError(f"{path}: not a readable image ({exc})") from exc


def picture_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding the pixels."""
    try:
        with Image.open(path) as img:
            return img.size
    except FileNotFoundError as exc:
        raise ImageInputError(f"{path}: no such file") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageInputError(f"{path}: not a readable image ({exc})") from exc


def resize_short_side(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    scale = size / min(w, h)
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)


def center_crop(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> [1,3,H,W] float32 in [0,1], through the service's contract."""
    return torch.from_numpy(image_to_frame(np.asarray(img)))


def to_image(frame: torch.Tensor) -> Image.Image:
    """[1,3,H,W] in [0,1] -> PIL RGB, through the service's contract."""
    return Image.fromarray(frame_to_image(frame.detach().cpu().float().numpy()))


def load_image(path: Path, short_side: int | None = None, square: bool = False) -> torch.Tensor:
    """Read a picture as [1,3,H,W]; optionally resize (Lanczos) and centre-crop to a square."""
    img = open_rgb(Path(path))
    if short_side:
        img = resize_short_side(img, short_side)
        if square:
            img = center_crop(img, short_side)
    return to_tensor(img)


def list_images(folder: Path, exclude: tuple[str, ...] = ()) -> list[Path]:
    """Sorted picture files in a folder, minus names matching any glob in ``exclude``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageInputError(f"{folder}: not a folder")
    files = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not any(p.match(g) for g in exclude)
    )
    if not files:
        raise ImageInputError(f"{folder}: no images (.jpg/.png/...) found")
    return files


def random_crop(img: Image.Image, size: int, rng: random.Random, max_zoom: float = 1.5, scene: int = 0) -> torch.Tensor:
    """Resize the short side to size*[1, max_zoom] (or, with ``scene``, to scene*[1, max_zoom]: the photo at
    the scale of a frame that size, never below the crop), random square crop, random horizontal flip."""
    base = max(scene, size)
    img = resize_short_side(img, round(base * rng.uniform(1.0, max_zoom)))
    w, h = img.size
    left, top = rng.randint(0, w - size), rng.randint(0, h - size)
    img = img.crop((left, top, left + size, top + size))
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return to_tensor(img)


def sample_crops(
    files: list[Path], count: int, size: int, rng: random.Random, folder: Path, scene: int = 0
) -> torch.Tensor:
    """``count`` random crops [N,3,size,size] from randomly chosen files (each photo first scaled to a
    ``scene``-pixel short side when given); unreadable ones are skipped with a warning, and none readable
    at all is an error naming ``folder``."""
    crops = []
    for _ in range(count):
        path = rng.choice(files)
        try:
            crops.append(random_crop(open_rgb(path), size, rng, max_zoom=1.25 if scene else 1.5, scene=scene))
        except ImageInputError as exc:
            log.warning("skipping %s", exc)
    if not crops:
        raise ImageInputError(f"{folder}: none of the sampled content images could be read")
    return torch.cat(crops)


def save_png(img: Image.Image, path: Path) -> None:
    """Write atomically: temporary name, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix.lower() in (".jpg", ".jpeg"):
        img.save(tmp, format="JPEG", quality=85)
    else:
        img.save(tmp, format="PNG")
    tmp.replace(path)


def grid(rows: list[list[Image.Image]], cell: int | tuple[int, int] = 192, pad: int = 4) -> Image.Image:
    """Tile pictures row by row into one image, each fitted into a cell (a square's side, or width and height)."""
    width, height = (cell, cell) if isinstance(cell, int) else cell
    ncols = max(len(r) for r in rows)
    sheet = Image.new("RGB", (ncols * (width + pad) + pad, len(rows) * (height + pad) + pad), "white")
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            thumb = img.copy()
            thumb.thumbnail((width, height), Image.Resampling.LANCZOS)
            sheet.paste(thumb, (pad + c * (width + pad), pad + r * (height + pad)))
    return sheet
