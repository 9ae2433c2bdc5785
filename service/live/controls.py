"""What one peer asked for, and how a control message changes it: the look a stream is heading to, the easing of
its blend, and the one way every door (the data channel, WHIP's query and look route) applies an update."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.blend import Easing
from service.dream import Dreamer
from service.engine import Engine
from service.errors import BadRequest, FeatureUnavailable, ServiceError
from service.look import LOOK_KEYS, Look, LookUpdate, decode_json


@dataclass
class Controls:
    """What one peer asked for: the look it is heading to (its blend reached over frames by ``easing``);
    replaced only on the event loop, by control messages."""

    look: Look
    easing: Easing

    @classmethod
    def starting(cls, look: Look, ease_frames: int) -> Controls:
        return cls(look=look, easing=Easing(look.weights, ease_frames))


def apply_control(engine: Engine, controls: Controls, raw: object, dreamer: Dreamer | None = None) -> dict[str, Any]:
    """Validate one control message and apply all of it, or none of it; returns the reply. Never raises for
    what a client sends: every malformed message becomes ``{"error": ...}``."""
    reply: dict[str, Any] = {}
    try:
        message = decode_json(raw) if isinstance(raw, str | bytes) else raw
        if isinstance(message, dict) and "id" in message:
            ident = message["id"]
            reply["id"] = ident if isinstance(ident, str | int) and not isinstance(ident, bool) else None
            message = {k: v for k, v in message.items() if k != "id"}
        if not isinstance(message, dict) or not message:
            raise BadRequest(f"a control message is a JSON object with any of {list(LOOK_KEYS)}")
        apply_look(engine, controls, LookUpdate.parse(message, "a control message"), dreamer)
    except ServiceError as exc:
        reply["error"] = str(exc)
        return reply
    reply["ok"] = True
    return reply


def apply_look(engine: Engine, controls: Controls, update: LookUpdate, dreamer: Dreamer | None) -> None:
    """Apply a validated update to a stream's controls, all of it or none of it (the data channel, WHIP's query
    and look route): the new look is made (and checked) first, then the blend eases to it; raises the
    ServiceError that says what is wrong."""
    old = controls.look
    look = update.applied_to(old, engine)
    if look.mode == "dream" and old.mode != "dream":
        reason = "this server was started without dream mode" if dreamer is None else dreamer.unavailable
        if reason:
            raise FeatureUnavailable(reason)
    if look.model != old.model:
        controls.easing.reset(look.weights)
    else:
        if look.styles != old.styles:  # a style was added or removed under the stream
            controls.easing.follow(old.styles, look.styles)
        if update.weights is not None:
            controls.easing.set_target(look.weights)
    controls.look = look
