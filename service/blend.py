"""Style weights by name -> validated vector, and per-frame easing toward a new blend."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from service import contract
from service.contract import ContractError
from service.errors import BadRequest


def weights_vector(styles: tuple[str, ...], weights: Mapping[str, float]) -> np.ndarray:
    """``{"style": weight}`` (numbers already checked by service/look.py) -> float32 [1, S] summing to 1, in the
    model's order; unnamed styles get 0, and a name the model lacks is a BadRequest that lists its styles."""
    unknown = sorted(str(k) for k in weights if k not in styles)
    if unknown:
        raise BadRequest(f"unknown styles {unknown}; this model has {list(styles)}")
    vector = np.zeros(len(styles), dtype=np.float64)
    for name, value in weights.items():
        vector[styles.index(name)] = value
    try:
        return contract.normalize_weights(vector, len(styles))
    except ContractError as exc:
        raise BadRequest(str(exc)) from exc


def remap_weights(vector: np.ndarray, old: tuple[str, ...], new: tuple[str, ...]) -> np.ndarray:
    """A [1, len(old)] blend over ``old``'s styles as the same blend over ``new``'s (a style was added or
    removed while a stream ran): weights follow their names; a blend left empty becomes ``new``'s first style."""
    out = np.zeros((1, len(new)), dtype=np.float32)
    for i, name in enumerate(old):
        if name in new and i < vector.shape[-1]:
            out[0, new.index(name)] = vector.reshape(-1)[i]
    total = float(out.sum())
    if total <= 0:
        return contract.one_hot(0, len(new))
    return (out / total).astype(np.float32)


def parse_weights_text(text: str) -> dict[str, float]:
    """``"a=1,b=0.5"`` -> ``{"a": 1.0, "b": 0.5}`` (for forms and the command line)."""
    result: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            result[name.strip()] = float(value)
        except ValueError:
            raise BadRequest(f"weights must look like 'style=1,other=0.5', got {item!r}") from None
    return result


def check_strength(value: object) -> float:
    """A number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"strength must be a number in [0, 1], got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise BadRequest(f"strength must be in [0, 1], got {value}")
    return float(value)


class Easing:
    """Moves the applied weights linearly from where they are to a new target over ``frames`` steps.

    Not thread-safe: owned by the event loop; the worker thread receives the stepped vector.
    """

    def __init__(self, initial: np.ndarray, frames: int) -> None:
        self.frames = max(0, frames)
        self._start = initial.astype(np.float32)
        self._target = self._start
        self._current = self._start
        self._step = self.frames

    @property
    def target(self) -> np.ndarray:
        return self._target

    def set_target(self, target: np.ndarray) -> None:
        """Ease toward ``target`` from the currently applied vector; a size change jumps."""
        target = target.astype(np.float32)
        if target.shape != self._current.shape:
            self.reset(target)
            return
        self._start, self._target, self._step = self._current, target, 0

    def reset(self, vector: np.ndarray) -> None:
        self._start = self._target = self._current = vector.astype(np.float32)
        self._step = self.frames

    def follow(self, old: tuple[str, ...], new: tuple[str, ...]) -> None:
        """The model's styles changed under a running stream: keep easing the same blend, by name."""
        self._start, self._target, self._current = (
            remap_weights(v, old, new) for v in (self._start, self._target, self._current)
        )

    def step(self) -> np.ndarray:
        """The vector for the next frame."""
        if self._step < self.frames:
            self._step += 1
            t = self._step / self.frames
            self._current = ((1.0 - t) * self._start + t * self._target).astype(np.float32)
        else:
            self._current = self._target
        return self._current
