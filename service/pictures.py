"""Pictures people send: one decoder, with one answer per fault (too many bytes or pixels: 413; not a picture
this server reads: 415)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from service.errors import PayloadTooLarge, UnsupportedMedia


def decode_image(data: bytes, limit: int, max_pixels: int = 40_000_000) -> np.ndarray:
    """Upload bytes -> HxWx3 uint8 RGB, turned upright by its EXIF orientation (phone photos); 413 beyond
    ``limit`` bytes or ``max_pixels`` pixels (read from the header, before anything is decoded), 415 when not
    an image."""
    if len(data) > limit:
        raise PayloadTooLarge(f"image is larger than the limit of {limit} bytes")
    try:
        with Image.open(io.BytesIO(data)) as picture:
            width, height = picture.size
            if width * height > max_pixels:
                raise PayloadTooLarge(f"image is {width}x{height} pixels; the limit is {max_pixels} pixels")
            picture.load()
            upright = ImageOps.exif_transpose(picture)
            return np.asarray(upright.convert("RGB"))
    except Image.DecompressionBombError as exc:
        raise PayloadTooLarge(f"image has too many pixels ({exc})") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UnsupportedMedia(
            "the upload is not an image this server can read (send PNG, JPEG or WebP)"
        ) from exc

