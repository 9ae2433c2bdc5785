"""Style thumbnails: a bundled picture per style if present, else a swatch painted by the model."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from service import contract
from service.engine import Engine
from service.errors import NotFound

SWATCH_SIDE = 160
FILE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}


def swatch_source(side: int = SWATCH_SIDE) -> np.ndarray:
    """A built-in colourful test picture (gradients and discs) to paint when no thumbnail is bundled."""
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / (side - 1)
    rgb = np.stack([x, y, 1.0 - 0.5 * (x + y)], axis=-1)
    for cx, cy, radius, colour in ((0.3, 0.35, 0.18, (1.0, 0.9, 0.2)), (0.7, 0.65, 0.22, (0.1, 0.3, 0.8))):
        disc = (x - cx) ** 2 + (y - cy) ** 2 < radius**2
        rgb[disc] = colour
    return (rgb * 255.0 + 0.5).astype(np.uint8)


class Thumbnails:
    """Finds or paints one thumbnail per style name; painted ones are cached (thread-safe)."""

    def __init__(self, folder: Path, engine: Engine, more: tuple[Path, ...] = ()) -> None:
        """``folder``: the bundled thumbnails; ``more``: other folders searched after it (added styles)."""
        self.folders = (folder, *more)
        self.engine = engine
        self._cache: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()

    def get(self, style: str) -> tuple[bytes, str]:
        """(image bytes, media type) for a style of any loaded model; NotFound otherwise."""
        owner = next((m for m in self.engine.models.values() if style in m.styles), None)
        if owner is None:
            raise NotFound(f"unknown style {style!r}")
        with self._lock:
            if style not in self._cache:
                self._cache[style] = self._bundled(style) or self._paint(owner.entry.name, style)
            return self._cache[style]

    def forget(self, style: str) -> None:
        """A style was added or removed: find or paint its thumbnail afresh next time."""
        with self._lock:
            self._cache.pop(style, None)

    def _bundled(self, style: str) -> tuple[bytes, str] | None:
        for folder in self.folders:
            for suffix, media_type in FILE_TYPES.items():
                path = folder / f"{style}{suffix}"
                if path.is_file():
                    return path.read_bytes(), media_type
        return None

    def _paint(self, model: str, style: str) -> tuple[bytes, str]:
        styles = self.engine.model(model).styles
        weights = contract.one_hot(styles.index(style), len(styles))
        image = self.engine.stylize(swatch_source(), weights, model=model)
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        return encoded.tobytes(), "image/jpeg"
