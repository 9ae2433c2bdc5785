"""What the in-browser painting tests (Chromium and Firefox) compare against: the shipped models, a fixed frame,
the server engine's pixels for it by the contract's functions, and the page function that paints pixels here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from service import contract

MODELS = Path(__file__).resolve().parents[2] / "models"

PAINT = """async ([rgba, w, h, weights, strength, keep]) => {
  const painter = window.livestyle.paint.painter;
  const r = await painter.paintPixels(Uint8ClampedArray.from(rgba), w, h, weights, strength, keep);
  return Array.from(r.rgba);
}"""


def fixed_frame() -> np.ndarray:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (90, 124, 3), dtype=np.uint8)  # sides that are not multiples of 8: padding
    rgb[:, :60] = np.linspace(0, 255, 60, dtype=np.uint8)[None, :, None]
    return rgb


def python_reference(
    entry: contract.ModelEntry, rgb: np.ndarray, weights: dict[str, float], strength: float, preserve_color: bool
) -> np.ndarray:
    """What the server's engine paints (service/engine.py stylize), by its contract functions."""
    session = ort.InferenceSession(str(MODELS / entry.file), providers=["CPUExecutionProvider"])
    vector = np.array([weights.get(s, 0.0) for s in entry.styles])
    frame = contract.image_to_frame(rgb)
    (out,) = session.run(
        [contract.OUTPUT_STYLIZED],
        {
            contract.INPUT_FRAME: contract.pad_frame(frame, entry.size_multiple),
            contract.INPUT_WEIGHTS: contract.normalize_weights(vector, len(entry.styles)),
        },
    )
    out = contract.crop_frame(out, *rgb.shape[:2])
    if preserve_color:
        out = contract.preserve_color(frame, out)
    return contract.frame_to_image(contract.mix_strength(frame, out, strength))
