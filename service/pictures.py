"""Pictures people send: one decoder, with one answer per fault (too many bytes or pixels: 413; not a picture
this server reads: 415)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from service.errors import PayloadTooLarge, UnsupportedMedia


def open_picture(data: bytes, limit: int, max_pixels: int) -> Image.Image:
    """Upload bytes -> an RGB picture, turned upright by its EXIF orientation (phone photos). 413 beyond
    ``limit`` bytes or ``max_pixels`` pixels (read from the header, before anything is decoded), 415 when it is
    not a picture this server reads."""
    if len(data) > limit:
        raise PayloadTooLarge(f"the picture is larger than the limit of {limit} bytes")
    try:
        with Image.open(io.BytesIO(data)) as picture:
            width, height = picture.size
            if width * height > max_pixels:
                raise PayloadTooLarge(f"the picture is {width}x{height} pixels; the limit is {max_pixels} pixels")
            picture.load()
            return ImageOps.exif_transpose(picture).convert("RGB")
    except Image.DecompressionBombError as exc:
        raise PayloadTooLarge(f"the picture has too many pixels ({exc})") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UnsupportedMedia("the upload is not an image this server can read (send PNG, JPEG or WebP)") from exc


def decode_image(data: bytes, limit: int, max_pixels: int = 40_000_000) -> np.ndarray:
    """Upload bytes -> HxWx3 uint8 RGB, upright (see :func:`open_picture`)."""
    return np.asarray(open_picture(data, limit, max_pixels))
