"""The look of a frame, and the one vocabulary that changes it.

:class:`Look` is the complete, validated look one frame is painted with; the live track, the painter, video
files, jobs, /api/stylize and the CLI all hold one. :class:`LookUpdate` is a partial change in the control
vocabulary every entry point speaks (the data channel's JSON, the forms of /api/stylize and /api/jobs, the
flags of ``livestyle-video``), validated once by ONE pydantic model: the same bad value gets the same message
everywhere, and nothing malformed (NaN, 1e400, a 5000-digit number, a nested object, the wrong type, an
unknown key) escapes as anything but :class:`BadRequest`. ``update.applied_to(look, engine)`` is the new look;
the names of styles and models are checked there, against the models loaded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from service import contract
from service.blend import check_strength, parse_weights_text, remap_weights, weights_vector
from service.brush import check_brush
from service.dream import DreamParams
from service.engine import Engine
from service.errors import BadRequest
from service.stabilize import StabilizeOptions

Mode = Literal["style", "dream", "passthrough"]  # the style network, iterative DeepDream, or the camera as is
MODES: tuple[str, ...] = get_args(Mode)
DREAM_KEYS = ("layer", "iterations", "octaves", "feedback", "intensity")
LOOK_KEYS = ("weights", "strength", "preserve_color", "stabilize", "brush", "model", "mode", *DREAM_KEYS)
MAX_STYLES_IN_A_BLEND = 256


def _number(name: str, value: object) -> float:
    """A finite number (bool is not one); a too-large integer is an error, not an OverflowError."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {_short(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{name} is too large a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {number}")
    return number


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {_short(value)}")
    return value


@dataclass(frozen=True)
class Look:
    """Everything that decides how one frame is painted; complete and already valid (made by
    :meth:`LookUpdate.applied_to` or :meth:`Look.first`, never checked again)."""

    model: str
    styles: tuple[str, ...]  # the model's styles, in the order ``weights`` follows
    weights: np.ndarray  # normalized float32 [1, len(styles)]
    strength: float = 1.0  # 0 = the camera, 1 = fully painted
    preserve_color: bool = False  # keep the camera's colours, paint only the strokes
    brush: float = 1.0  # stroke scale (service/brush.py)
    stabilize: StabilizeOptions | None = None  # None: each frame painted on its own
    mode: Mode = "style"
    dream: DreamParams = field(default_factory=DreamParams)

    @classmethod
    def first(cls, engine: Engine, model: str | None = None) -> Look:
        """A model's (default: the engine's default) first style, fully painted."""
        loaded = engine.model(model)
        return cls(model=loaded.entry.name, styles=loaded.styles, weights=contract.one_hot(0, len(loaded.styles)))

    def key(self, with_weights: bool = True) -> tuple[object, ...]:
        """What makes two looks different: a new look starts the stream's memory afresh."""
        weights = self.weights.tobytes() if with_weights else None
        return (
            self.model,
            weights,
            self.strength,
            self.preserve_color,
            self.brush,
            self.stabilize,
            self.mode,
            self.dream if self.mode == "dream" else None,
        )

    def blended(self, weights: np.ndarray) -> Look:
        """This look with another blend over the same styles (an eased or scheduled frame)."""
        return replace(self, weights=weights)

    def following(self, styles: tuple[str, ...]) -> Look:
        """The same blend, by name, over the model's styles after one was added or removed under a stream."""
        if styles == self.styles:
            return self
        return replace(self, styles=styles, weights=remap_weights(self.weights, self.styles, styles))


class LookUpdate(BaseModel):
    """Any subset of the look: what a control message, a form or the command line asks to change."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: dict[str, float] | None = None
    strength: float | None = None
    preserve_color: bool | None = None
    stabilize: bool | None = None
    brush: float | None = None
    model: str | None = None
    mode: Mode | None = None
    layer: str | None = None
    iterations: int | None = None
    octaves: int | None = None
    feedback: float | None = None
    intensity: float | None = None

    @field_validator("weights", mode="before")
    @classmethod
    def _weights(cls, value: object) -> dict[str, float] | None:
        if value is None:
            return None
        if not isinstance(value, Mapping) or not value:
            raise ValueError("weights must be a non-empty object of style name -> number")
        if len(value) > MAX_STYLES_IN_A_BLEND:
            raise ValueError(f"weights may name at most {MAX_STYLES_IN_A_BLEND} styles")
        out = {}
        for name, weight in value.items():
            if not isinstance(name, str):
                raise ValueError("weights must be an object of style name -> number")
            number = _number(f"weight of {_short(name)}", weight)
            if number < 0:
                raise ValueError(f"weights must be non-negative, got {number} for {_short(name)}")
            out[name] = number
        total = sum(out.values())
        if not math.isfinite(total):
            raise ValueError("weights are too large to add up; use numbers like 0.3 and 0.7")
        if total <= 0:
            raise ValueError("weights must have a positive sum")
        return out

    @field_validator("strength", mode="before")
    @classmethod
    def _strength(cls, value: object) -> float | None:
        return None if value is None else check_strength(_number("strength", value))

    @field_validator("brush", mode="before")
    @classmethod
    def _brush(cls, value: object) -> float | None:
        return None if value is None else check_brush(_number("brush", value))

    @field_validator("preserve_color", "stabilize", mode="before")
    @classmethod
    def _flags(cls, value: object, info: Any) -> bool | None:
        return None if value is None else _flag(info.field_name, value)

    @field_validator("model", "layer", mode="before")
    @classmethod
    def _names(cls, value: object, info: Any) -> str | None:
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{info.field_name} must be a name (a string), got {_short(value)}")
        return value

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: object) -> str | None:
        if value is not None and value not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {_short(value)}")
        return value  # type: ignore[return-value]

    @field_validator("iterations", "octaves", mode="before")
    @classmethod
    def _counts(cls, value: object, info: Any) -> int | None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or abs(value) > 10**6):
            raise ValueError(f"{info.field_name} must be a small integer, got {_short(value)}")
        return value

    @field_validator("feedback", "intensity", mode="before")
    @classmethod
    def _fractions(cls, value: object, info: Any) -> float | None:
        return None if value is None else _number(info.field_name, value)

    @classmethod
    def parse(cls, data: object, what: str = "a look update") -> LookUpdate:
        """Validate a mapping (a decoded control message, form fields, flags); BadRequest says what is wrong."""
        if not isinstance(data, Mapping):
            raise BadRequest(f"{what} is a JSON object with any of {list(LOOK_KEYS)}")
        unknown = sorted(str(k)[:40] for k in data if k not in LOOK_KEYS)
        if unknown:
            raise BadRequest(f"unknown control keys {unknown}; allowed: {list(LOOK_KEYS)}")
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise BadRequest(_message(exc)) from None

    @classmethod
    def from_text(cls, fields: Mapping[str, str | None]) -> LookUpdate:
        """Form fields or flags, all text: numbers, true/false, and weights as JSON or ``a=1,b=0.5``."""
        data: dict[str, object] = {}
        for key, text in fields.items():
            if text is None or text == "":
                continue
            if key == "weights":
                data[key] = parse_weights_field(text)
            elif key in ("preserve_color", "stabilize"):
                data[key] = _text_flag(key, text)
            elif key in ("strength", "brush", "feedback", "intensity", "iterations", "octaves"):
                data[key] = _text_number(key, text)
            else:
                data[key] = text
        return cls.parse(data)

    def as_look(self, engine: Engine, steady: StabilizeOptions | None = None) -> Look:
        """This update over its model's (or the default model's) first style, fully painted: a new stream's,
        picture's or video's look."""
        return self.applied_to(Look.first(engine, self.model), engine, steady)

    def applied_to(self, look: Look, engine: Engine, steady: StabilizeOptions | None = None) -> Look:
        """The look after this change: what is not named stays, a new model starts on its first style unless
        weights are given, and a blend over styles that changed follows their names. ``steady``: the
        stabilizer's tuning when this turns it on (default: the shipped one)."""
        loaded = engine.model(self.model if self.model is not None else look.model)
        weights = None if self.weights is None else weights_vector(loaded.styles, self.weights)
        if weights is None:
            weights = (
                look.following(loaded.styles).weights
                if loaded.entry.name == look.model
                else contract.one_hot(0, len(loaded.styles))
            )
        stabilize = look.stabilize
        if self.stabilize is not None:
            stabilize = (stabilize or steady or StabilizeOptions()) if self.stabilize else None
        return Look(
            model=loaded.entry.name,
            styles=loaded.styles,
            weights=weights,
            strength=look.strength if self.strength is None else self.strength,
            preserve_color=look.preserve_color if self.preserve_color is None else self.preserve_color,
            brush=look.brush if self.brush is None else self.brush,
            stabilize=stabilize,
            mode=look.mode if self.mode is None else self.mode,
            dream=look.dream.updated(self.dream_changes()),
        )

    def dream_changes(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in DREAM_KEYS if getattr(self, k) is not None}


def _message(exc: ValidationError) -> str:
    """The first error, as the validator worded it (pydantic's own words for type errors)."""
    first = exc.errors()[0]
    ctx = first.get("ctx") or {}
    if isinstance(ctx.get("error"), Exception):
        return str(ctx["error"])
    field = ".".join(str(p) for p in first.get("loc", ())) or "value"
    return f"{field}: {first.get('msg', 'invalid')}"


def _text_flag(key: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise BadRequest(f"{key} must be true or false, got {_short(text)}")


def _text_number(key: str, text: str) -> int | float:
    stripped = text.strip()
    try:
        return int(stripped) if stripped.lstrip("+-").isdigit() and len(stripped) < 20 else float(stripped)
    except ValueError:
        raise BadRequest(f"{key} must be a number, got {_short(text)}") from None


def parse_weights_field(text: str) -> object:
    """A form's or flag's weights: a JSON object or ``style=w,other=w``."""
    if text.lstrip().startswith("{"):
        return decode_json(text, "weights")
    return parse_weights_text(text)


def decode_json(raw: str | bytes, what: str = "a control message") -> object:
    """JSON text -> Python; every way it can fail (bad syntax, not UTF-8, too deep, a number with thousands
    of digits) is one BadRequest."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError and int limits are ValueErrors
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:120]
        raise BadRequest(f"{what} is not valid JSON ({reason})") from None
