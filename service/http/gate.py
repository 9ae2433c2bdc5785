"""The front gate of every HTTP request, before any route runs: the API token, foreign pages, body limits.

- **Token**: with ``LIVESTYLE_API_TOKEN`` set, every ``/api/*`` request except ``/api/health`` and ``OPTIONS``
  needs ``Authorization: Bearer <token>`` (401 otherwise; what OBS sends to a WHIP server). The page and the
  static files stay open: the page asks for the token and sends it itself.
- **Foreign pages**: a browser sends ``Origin`` with every cross-site POST; one that names another site than
  this server (and is not in ``allowed_origins``) is refused with 403 before the body is read, so a page
  elsewhere cannot drive this server with the visitor's network position, token or not.
- **Bodies**: each route has a byte limit (``BodyLimits``), enforced from ``Content-Length`` at once and
  while the body arrives (chunked uploads): 413 as soon as the limit is passed, never after the whole body
  is on disk. A route may have a precheck (the job queue is full: 503) that runs before its body is read.
- **Cross-origin isolation**: every response carries ``Cross-Origin-Opener-Policy: same-origin`` and
  ``Cross-Origin-Embedder-Policy: require-corp``; only an isolated page may share memory between threads, which
  the in-browser runtime's WASM threads need (without it they silently run on one). Everything the page loads
  comes from this origin, so nothing it uses is blocked.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import Forbidden, PayloadTooLarge, ServiceError, Unauthorized

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/api/health"})
ISOLATION = ((b"cross-origin-opener-policy", b"same-origin"), (b"cross-origin-embedder-policy", b"require-corp"))
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class BodyLimits:
    """Largest request body per (method, path) in bytes; anything else gets ``default``."""

    routes: dict[tuple[str, str], int] = field(default_factory=dict)
    default: int = 64 * 1024

    def of(self, method: str, path: str) -> int:
        return self.routes.get((method, path.rstrip("/") or "/"), self.default)


Precheck = Callable[[], None]  # raises a ServiceError to refuse the request before its body is read


class Gate:
    """Pure ASGI middleware (it must see the body as it streams, which ``BaseHTTPMiddleware`` would not)."""

    def __init__(
        self,
        app: ASGIApp,
        token: str | None,
        allowed_origins: tuple[str, ...],
        limits: BodyLimits,
        prechecks: dict[tuple[str, str], Precheck] | None = None,
    ) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None
        self.allowed_origins = frozenset(o.rstrip("/").lower() for o in allowed_origins)
        self.limits = limits
        self.prechecks = prechecks or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        headers = Headers(scope=scope)
        limit = self.limits.of(method, path)
        try:
            self._check(method, path, headers, limit)
        except ServiceError as refused:
            await _reply(send, refused)
            return
        started = replied = False
        received = 0

        async def counted() -> Message:
            # Past the limit: answer 413 now and tell the route the client is gone (an exception here would
            # become FastAPI's 400 "error parsing the body"); whatever the route sends after is dropped.
            nonlocal received, replied
            if replied:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    log.info("%s %s: body past its limit of %d bytes", method, path, limit)
                    if not started:
                        await _reply(
                            send,
                            PayloadTooLarge(f"the request body is larger than this route's limit of {limit} bytes"),
                        )
                    replied = True
                    return {"type": "http.disconnect"}
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if replied:
                return
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", ()), *ISOLATION]}
            await send(message)

        await self.app(scope, counted, tracked)

    def _check(self, method: str, path: str, headers: Headers, limit: int) -> None:
        """Raises the refusal (an errors.py class) of a request that must not reach its route."""
        # OPTIONS does no work and a CORS preflight never carries the token (RFC 9725 exempts it): no token asked
        if self.expected is not None and path.startswith("/api/") and path not in OPEN_PATHS and method != "OPTIONS":
            given = headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, self.expected):
                raise Unauthorized("this server needs its API token: Authorization: Bearer <token>")
        if method not in SAFE_METHODS and not self._same_site(headers):
            raise Forbidden("requests from another site's page are refused (add it to allowed_origins)")
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            raise PayloadTooLarge(f"the request body is larger than this route's limit of {limit} bytes")
        check = self.prechecks.get((method, path.rstrip("/")))
        if check is not None:
            check()

    def _same_site(self, headers: Headers) -> bool:
        """No Origin (not a browser, or same-origin GET-like navigation), or an Origin naming this server."""
        origin = headers.get("origin")
        if origin is None:
            return True
        origin = origin.rstrip("/").lower()
        if origin in self.allowed_origins:
            return True
        host = headers.get("host", "").lower()
        return origin != "null" and urlsplit(origin).netloc == host


async def _reply(send: Send, refused: ServiceError) -> None:
    """The refusal as the app's error handler renders it (service/errors.py), from the gate itself."""
    body = json.dumps(refused.detail()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in refused.headers().items()]
    await send({"type": "http.response.start", "status": refused.status_code, "headers": [*headers, *ISOLATION]})
    await send({"type": "http.response.body", "body": body})
