"""What a benchmark reads from the shared data folder (``--data``, default ../shared/data): the painting of each
style, and the held-out photos (``bsds_val_*``, never trained on)."""

from __future__ import annotations

import logging
from pathlib import Path

from training import images

log = logging.getLogger(__name__)


def paintings_for(data: Path, styles: tuple[str, ...], limit: int) -> dict[str, Path]:
    found = {}
    for style in styles:
        for suffix in (".jpg", ".png", ".jpeg"):
            if (data / "styles" / f"{style}{suffix}").is_file():
                found[style] = data / "styles" / f"{style}{suffix}"
                break
        else:
            log.warning("no painting for style %s under %s", style, data / "styles")
    return dict(list(found.items())[:limit]) if limit else found


def held_out_photos(data: Path, count: int) -> tuple[Path, ...]:
    return tuple(p for p in images.list_images(data / "photos") if p.match("bsds_val_*"))[:count]
