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
    return labelled_grid(rows, (size, size))


def labelled_grid(
    rows: list[tuple[str, list[Image.Image]]], cell: tuple[int, int], columns: list[str] | None = None
) -> Image.Image:
    """``images.grid`` of the rows' tiles with each row's name in a label column on the left and, with
    ``columns``, a line of column names on top."""
    (width, height), pad = cell, 4
    body = images.grid([tiles for _, tiles in rows], cell, pad)
    header = 24 if columns else 0
    sheet = Image.new("RGB", (LABEL_WIDTH + body.width, header + body.height), "white")
    sheet.paste(body, (LABEL_WIDTH, header))
    draw = ImageDraw.Draw(sheet)
    for c, name in enumerate(columns or []):
        draw.text((LABEL_WIDTH + pad + c * (width + pad) + 4, 6), name, fill="black")
    for r, (name, _) in enumerate(rows):
        sheet.paste(_label(name, height), (0, header + pad + r * (height + pad)))
    return sheet


def write_contact_sheet(models_dir: Path, model: str, photos: list[Path], out: Path, size: int = 256) -> None:
    images.save_png(contact_sheet(models_dir, model, photos, size), out)
