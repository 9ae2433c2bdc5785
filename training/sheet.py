"""Contact sheets of the shipped models, rendered through the service's ONNX engine (what users get)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from service import contract
from service.engine import Engine, RuntimeOptions
from training import images

LABEL_WIDTH = 170


def _label(text: str, height: int) -> Image.Image:
    tile = Image.new("RGB", (LABEL_WIDTH, height), "white")
    draw = ImageDraw.Draw(tile)
    y = height // 2 - 8 * (text.count("\n") + 1)
    for line in text.split("\n"):
        draw.text((6, y), line, fill="black")
        y += 14
    return tile


def contact_sheet(models_dir: Path, model: str, photos: list[Path], size: int = 256) -> Image.Image:
    """Rows: the photos, then each style, then 50/50 and three-way blends; a label column on the left."""
    engine = Engine.load(models_dir, RuntimeOptions(intra_op_threads=0))
    styles = engine.model(model).styles
    pictures = [np.asarray(images.resize_short_side(images.open_rgb(p), size)) for p in photos]
    pictures = [p[:size, :size] if min(p.shape[:2]) >= size else p for p in pictures]
    rows: list[tuple[str, list[Image.Image]]] = [
        ("photo\n(not used in training)", [Image.fromarray(p) for p in pictures])
    ]
    blends: list[tuple[str, dict[str, float]]] = [(s, {s: 1.0}) for s in styles]
    if len(styles) >= 2:
        blends.append((f"blend 50/50\n{styles[0]}\n+ {styles[1]}", {styles[0]: 0.5, styles[1]: 0.5}))
    if len(styles) >= 4:
        third = {styles[2]: 1 / 3, styles[3]: 1 / 3, styles[-1]: 1 / 3}
        blends.append(("blend 1/3 each\n" + "\n".join(third), third))
    for name, mix in blends:
        weights = contract.normalize_weights([mix.get(s, 0.0) for s in styles], len(styles))
        rows.append((name, [Image.fromarray(engine.stylize(p, weights, model=model)) for p in pictures]))
    cell, pad = size, 4
    sheet = Image.new(
        "RGB", (LABEL_WIDTH + len(pictures) * (cell + pad) + pad, len(rows) * (cell + pad) + pad), "white"
    )
    for r, (name, tiles) in enumerate(rows):
        top = pad + r * (cell + pad)
        sheet.paste(_label(name, cell), (0, top))
        for c, tile in enumerate(tiles):
            sheet.paste(
                tile.resize((cell, cell)) if tile.size != (cell, cell) else tile,
                (LABEL_WIDTH + pad + c * (cell + pad), top),
            )
    return sheet


def write_contact_sheet(models_dir: Path, model: str, photos: list[Path], out: Path, size: int = 256) -> None:
    images.save_png(contact_sheet(models_dir, model, photos, size), out)
