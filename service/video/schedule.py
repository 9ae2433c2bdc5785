"""Blend keyframes over time, interpolated per frame: an animated journey from one painting to another.

Two file forms, both times in seconds from the start of the video:

JSON: ``{"keyframes": [{"time": 0, "weights": {"starry_night": 1}},
                      {"time": 4, "weights": {"the_scream": 1}}]}`` (or just the list).

Text, one keyframe a line, ``#`` starts a comment::

    0    starry_night=1
    4s   the_scream=0.7,udnie=0.3

Before the first keyframe the first blend holds, after the last the last one; in between the
normalized weight vectors are mixed linearly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.blend import parse_weights_text, weights_vector
from service.errors import BadRequest
from service.look import LookUpdate, decode_json


@dataclass(frozen=True)
class Keyframe:
    time: float
    weights: dict[str, float]

    def __post_init__(self) -> None:
        if not math.isfinite(self.time) or self.time < 0:
            raise BadRequest(f"keyframe time must be a non-negative number of seconds, got {self.time}")
        LookUpdate.parse({"weights": self.weights}, "a keyframe")  # the control vocabulary's own check


@dataclass(frozen=True)
class Schedule:
    """Keyframes sorted by time; ``vectors`` turns them into weight vectors of one model."""

    keyframes: tuple[Keyframe, ...]

    def __post_init__(self) -> None:
        if not self.keyframes:
            raise BadRequest("a schedule needs at least one keyframe")
        times = [k.time for k in self.keyframes]
        if times != sorted(times) or len(set(times)) != len(times):
            raise BadRequest(f"keyframe times must strictly increase, got {times}")

    @classmethod
    def constant(cls, weights: dict[str, float]) -> Schedule:
        return cls((Keyframe(0.0, weights),))

    def for_styles(self, styles: tuple[str, ...]) -> BlendTrack:
        """Validate every keyframe against a model's styles (BadRequest names the keyframe)."""
        vectors = []
        for key in self.keyframes:
            try:
                vectors.append(weights_vector(styles, key.weights)[0])
            except BadRequest as exc:
                if len(self.keyframes) == 1:
                    raise
                raise BadRequest(f"keyframe at {key.time:g} s: {exc}") from None
        return BlendTrack(np.array([k.time for k in self.keyframes]), np.stack(vectors))


@dataclass(frozen=True)
class BlendTrack:
    """Keyframe times [K] and normalized vectors [K, S] of one model."""

    times: np.ndarray
    vectors: np.ndarray

    def at(self, seconds: float) -> np.ndarray:
        """The float32 [1, S] blend at ``seconds`` (linear between keyframes, held at the ends)."""
        mixed = [np.interp(seconds, self.times, self.vectors[:, s]) for s in range(self.vectors.shape[1])]
        vector = np.asarray(mixed, dtype=np.float64)
        return (vector / vector.sum()).astype(np.float32)[None]


def parse_schedule(text: str, source: str = "schedule") -> Schedule:
    """JSON or the text form above; BadRequest names ``source`` and the offending line or item."""
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        return _parse_json(stripped, source)
    keyframes = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        time_text, _, weights_text = line.partition(" ")
        try:
            seconds = float(time_text.removesuffix("s"))
            keyframes.append(Keyframe(seconds, parse_weights_text(weights_text)))
        except (ValueError, BadRequest) as exc:
            raise BadRequest(
                f"{source} line {number}: expected 'SECONDS style=w,other=w', got {line!r} ({exc})"
            ) from None
    try:
        return Schedule(tuple(keyframes))
    except BadRequest as exc:
        raise BadRequest(f"{source}: {exc}") from None


def read_schedule(path: Path) -> Schedule:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadRequest(f"cannot read schedule {path}: {exc}") from None
    return parse_schedule(text, str(path))


def _parse_json(text: str, source: str) -> Schedule:
    data = decode_json(text, source)
    items = data.get("keyframes") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise BadRequest(f'{source}: expected a list of keyframes or {{"keyframes": [...]}}')
    keyframes = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("weights"), dict):
            raise BadRequest(f'{source}: keyframe {index} must be {{"time": s, "weights": {{...}}}}')
        seconds = item.get("time")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise BadRequest(f"{source}: keyframe {index} needs a numeric 'time' in seconds")
        keyframes.append(Keyframe(float(seconds), dict(item["weights"])))
    try:
        return Schedule(tuple(keyframes))
    except BadRequest as exc:
        raise BadRequest(f"{source}: {exc}") from None
