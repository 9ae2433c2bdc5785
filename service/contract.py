"""The ONNX I/O contract shared by training (export) and the service (engine): numpy only.

A style network graph takes ``frame`` (float32 NCHW [1, 3, H, W], RGB in [0, 1], H and W multiples of
the model's ``size_multiple``) and ``style_weights`` (float32 [1, S], non-negative, summing to 1) and
returns ``stylized`` (float32 [1, 3, H, W], RGB in [0, 1]). A network with a memory may also take ``memory``
(float32 [1, MEMORY_CHANNELS, H, W]: its last painting carried onto this frame times its trust, then the trust);
the service feeds none yet, so it loads only graphs without one. Everything that converts pictures to and
from that layout lives here, so neither side restates it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

CONTRACT_VERSION = 1
INPUT_FRAME = "frame"
INPUT_WEIGHTS = "style_weights"
OUTPUT_STYLIZED = "stylized"
INPUT_MEMORY = "memory"
MEMORY_CHANNELS = 4  # the carried output's RGB times its trust, then the trust (all in [0, 1])
OPSET = 18
TIERS = ("realtime", "quality")
MANIFEST_NAME = "manifest.json"


class ContractError(ValueError):
    """An image, weight vector, model or manifest does not satisfy the contract."""


def image_to_frame(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB (or float in [0,1]) -> float32 [1, 3, H, W] in [0, 1]."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ContractError(f"expected an HxWx3 RGB image, got shape {rgb.shape}")
    if rgb.dtype == np.uint8:
        chw = rgb.astype(np.float32).transpose(2, 0, 1) / 255.0
    else:
        chw = np.clip(rgb.astype(np.float32), 0.0, 1.0).transpose(2, 0, 1)
    return np.ascontiguousarray(chw[None])


def frame_to_image(frame: np.ndarray) -> np.ndarray:
    """float32 [1, 3, H, W] in [0, 1] -> HxWx3 uint8 RGB (rounded, clipped)."""
    if frame.ndim != 4 or frame.shape[:2] != (1, 3):
        raise ContractError(f"expected a [1, 3, H, W] frame, got shape {frame.shape}")
    hwc = frame[0].transpose(1, 2, 0)
    return np.ascontiguousarray(np.clip(hwc * 255.0 + 0.5, 0, 255).astype(np.uint8))


def pad_amounts(height: int, width: int, multiple: int) -> tuple[int, int]:
    """Rows and columns to add at the bottom and right to reach a multiple of ``multiple``.

    Sizes are also raised to at least two multiples, so the network's deepest feature map is at
    least 2x2 (its reflection padding needs that).
    """

    def extra(size: int) -> int:
        return max(-(-size // multiple), 2) * multiple - size

    return extra(height), extra(width)


def pad_frame(frame: np.ndarray, multiple: int) -> np.ndarray:
    """Reflect-pad a [1, 3, H, W] frame at the bottom/right to multiples of ``multiple``."""
    ph, pw = pad_amounts(frame.shape[2], frame.shape[3], multiple)
    if ph == 0 and pw == 0:
        return frame
    # reflect needs pad < size; tiny frames fall back to edge replication
    mode: Literal["reflect", "edge"] = "reflect" if ph < frame.shape[2] and pw < frame.shape[3] else "edge"
    return np.pad(frame, ((0, 0), (0, 0), (0, ph), (0, pw)), mode=mode)


def crop_frame(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Undo :func:`pad_frame`."""
    return frame[:, :, :height, :width]


def normalize_weights(weights: np.ndarray | list[float], num_styles: int) -> np.ndarray:
    """Validate a style-weight vector and return it as float32 [1, S] summing to 1."""
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape[0] != num_styles:
        raise ContractError(f"expected {num_styles} style weights, got {w.shape[0]}")
    if not np.all(np.isfinite(w)):
        raise ContractError("style weights must be finite numbers (no NaN or infinity)")
    if np.any(w < 0):
        raise ContractError("style weights must be non-negative")
    total = float(w.sum())
    if total <= 0:
        raise ContractError("at least one style weight must be positive")
    return (w / total).astype(np.float32)[None]


def one_hot(index: int, num_styles: int) -> np.ndarray:
    """float32 [1, S] selecting one style."""
    w = np.zeros((1, num_styles), dtype=np.float32)
    w[0, index] = 1.0
    return w


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


DREAM_PREFIX = "dream_"  # a style named dream_<VGG19 layer> amplifies that layer (DeepDream as a style)


@dataclass(frozen=True)
class ModelEntry:
    """One shipped model as recorded in models/manifest.json."""

    name: str
    file: str
    sha256: str
    tier: str
    styles: tuple[str, ...]
    size_multiple: int
    contract_version: int = CONTRACT_VERSION
    config: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    credits: tuple[str, ...] = ()
    dreams: dict[str, dict[str, Any]] = field(default_factory=dict)  # dream style -> {"layer", "gain"}
    # The stabilizer's blend under a moving camera, calibrated for this model's strokes with
    # `python -m training.bench.steady_study` (docs/realtime-design.md); None: the stabilizer's default.
    # It belongs to these weights: an export writes a new entry without it.
    moving_blend: float | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.file:
            raise ContractError("manifest entry needs a name and a file")
        if self.tier not in TIERS:
            raise ContractError(f"model {self.name!r}: tier must be one of {TIERS}, got {self.tier!r}")
        if not self.styles:
            raise ContractError(f"model {self.name!r}: needs at least one style")
        if len(set(self.styles)) != len(self.styles):
            raise ContractError(f"model {self.name!r}: style names must be unique")
        if self.size_multiple < 1:
            raise ContractError(f"model {self.name!r}: size_multiple must be >= 1")
        stray = sorted(set(self.dreams) - set(self.styles))
        if stray:
            raise ContractError(f"model {self.name!r}: dreams {stray} are not among its styles")
        if self.moving_blend is not None and not 0.0 <= self.moving_blend < 1.0:
            raise ContractError(f"model {self.name!r}: moving_blend must be in [0, 1), got {self.moving_blend}")
        if self.contract_version != CONTRACT_VERSION:
            raise ContractError(
                f"model {self.name!r}: contract version {self.contract_version}, "
                f"this code speaks version {CONTRACT_VERSION}"
            )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelEntry:
        try:
            return cls(
                name=str(data["name"]),
                file=str(data["file"]),
                sha256=str(data["sha256"]),
                tier=str(data["tier"]),
                styles=tuple(str(s) for s in data["styles"]),
                size_multiple=int(data["size_multiple"]),
                contract_version=int(data.get("contract_version", -1)),
                config=dict(data.get("config", {})),
                training=dict(data.get("training", {})),
                credits=tuple(str(c) for c in data.get("credits", ())),
                dreams={str(k): dict(v) for k, v in data.get("dreams", {}).items()},
                moving_blend=None if data.get("moving_blend") is None else float(data["moving_blend"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ContractError):
                raise
            raise ContractError(f"manifest entry is malformed ({exc!r}): {data!r:.200}") from exc

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["styles"] = list(self.styles)
        data["credits"] = list(self.credits)
        if self.moving_blend is None:
            del data["moving_blend"]
        return data


def read_manifest(path: Path) -> list[ModelEntry]:
    """Parse models/manifest.json; raises ContractError naming the file on any problem."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ContractError(f"{path}: manifest not found") from exc
    except json.JSONDecodeError as exc:
        raise ContractError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), list):
        raise ContractError(f"{path}: expected an object with a 'models' list")
    try:
        entries = [ModelEntry.from_json(item) for item in raw["models"]]
    except ContractError as exc:
        raise ContractError(f"{path}: {exc}") from exc
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise ContractError(f"{path}: model names must be unique, got {names}")
    return entries


def write_manifest(path: Path, entries: list[ModelEntry]) -> None:
    """Write the manifest atomically (temporary name, then rename)."""
    body = {"contract_version": CONTRACT_VERSION, "models": [e.to_json() for e in entries]}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    tmp.replace(path)


def check_io(
    inputs: dict[str, tuple[Any, ...]], outputs: dict[str, tuple[Any, ...]], num_styles: int, memory: bool = False
) -> None:
    """Check graph input/output names and ranks (dims may be symbolic strings) against the contract; ``memory``:
    the graph must also take a memory (a memory network's), else it must not."""
    expected_in = {INPUT_FRAME, INPUT_WEIGHTS} | ({INPUT_MEMORY} if memory else set())
    if INPUT_MEMORY in inputs and not memory:
        raise ContractError(f"graph inputs {sorted(inputs)}: a memory network's, and no memory is fed here")
    if set(inputs) != expected_in:
        raise ContractError(f"graph inputs {sorted(inputs)} != contract {sorted(expected_in)}")
    if set(outputs) != {OUTPUT_STYLIZED}:
        raise ContractError(f"graph outputs {sorted(outputs)} != contract ['{OUTPUT_STYLIZED}']")
    frame, weights, out = inputs[INPUT_FRAME], inputs[INPUT_WEIGHTS], outputs[OUTPUT_STYLIZED]
    if len(frame) != 4 or frame[1] != 3:
        raise ContractError(f"input '{INPUT_FRAME}' must be [1, 3, H, W], graph says {list(frame)}")
    if len(weights) != 2 or weights[1] != num_styles:
        raise ContractError(f"input '{INPUT_WEIGHTS}' must be [1, {num_styles}], graph says {list(weights)}")
    if len(out) != 4 or out[1] != 3:
        raise ContractError(f"output '{OUTPUT_STYLIZED}' must be [1, 3, H, W], graph says {list(out)}")
    held = inputs.get(INPUT_MEMORY)
    if held is not None and (len(held) != 4 or held[1] != MEMORY_CHANNELS):
        raise ContractError(f"input '{INPUT_MEMORY}' must be [1, {MEMORY_CHANNELS}, H, W], graph says {list(held)}")


def fit_within(height: int, width: int, max_side: int) -> tuple[int, int]:
    """Largest (h, w) with the same aspect whose longer side is at most ``max_side``."""
    longest = max(height, width)
    if longest <= max_side:
        return height, width
    scale = max_side / longest
    return max(1, math.floor(height * scale + 0.5)), max(1, math.floor(width * scale + 0.5))


def preserve_color(content: np.ndarray, stylized: np.ndarray) -> np.ndarray:
    """Keep the content's colour: stylized luminance with the content's chroma (YUV, frames in [0,1])."""
    y_c, u_c, v_c = _rgb_to_yuv(content)
    y_s, _, _ = _rgb_to_yuv(stylized)
    return np.clip(_yuv_to_rgb(y_s, u_c, v_c), 0.0, 1.0).astype(np.float32)


def mix_strength(content: np.ndarray, stylized: np.ndarray, strength: float) -> np.ndarray:
    """Linear mix: strength 1 is fully stylized, 0 the original frame."""
    if strength >= 1.0:
        return stylized
    return (stylized * strength + content * (1.0 - strength)).astype(np.float32)


def _rgb_to_yuv(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r, g, b = frame[:, 0], frame[:, 1], frame[:, 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return y, 0.492 * (b - y), 0.877 * (r - y)


def _yuv_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    r = y + v / 0.877
    b = y + u / 0.492
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return np.stack([r, g, b], axis=1)
