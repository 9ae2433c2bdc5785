"""A small WebDriver BiDi client for a stock Firefox (Debian's firefox-esr), for the browser tests.

Firefox has WebDriver BiDi built in: started with ``--remote-debugging-port`` it serves a WebSocket at
``ws://127.0.0.1:PORT/session`` and needs no geckodriver. Playwright's Firefox is a patched build that
cannot be downloaded here, so this module holds just what the tests need, on the standard library only:

- ``WebSocket``: a blocking RFC 6455 client (text messages, ping/pong, close), enough for one local peer;
- ``Firefox``: starts Firefox headless in a throwaway profile (prefs written to its ``user.js``), opens a
  BiDi session on the first tab and offers a few commands: ``navigate``, ``evaluate``, ``call``,
  ``wait_for`` and ``click``; ``close`` ends the session and kills the whole process group.

Message shapes follow the WebDriver BiDi specification: a command is ``{"id", "method", "params"}``, its
answer ``{"type": "success", "id", "result"}`` or ``{"type": "error", "id", "error", "message"}``, and
script results come back as *remote values* (``{"type": "number", "value": 3}``), turned into Python here.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

PORT_FILE = "WebDriverBiDiServer.json"  # Firefox writes the port it listens on here, in the profile


class WebSocketClosed(ConnectionError):
    """The peer closed the WebSocket (or the TCP connection) while a message was awaited."""


class WebSocket:
    """A blocking WebSocket client: one connection, text messages in and out.

    Client frames are masked as RFC 6455 requires; fragmented messages are joined; pings are answered.
    Any timeout or protocol error leaves the connection unusable: callers treat it as fatal.
    """

    def __init__(self, host: str, port: int, path: str, timeout: float = 10.0) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._buffer = bytearray()
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self._sock.sendall(request.encode())
        head = self._read_until(b"\r\n\r\n", time.monotonic() + timeout).decode("latin-1")
        status, *lines = head.split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
        expected = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
        if " 101 " not in f"{status} " or headers.get("sec-websocket-accept") != expected:
            self._sock.close()
            raise ConnectionError(f"WebSocket handshake with {host}:{port}{path} failed: {status!r}")

    # -- bytes in

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no WebSocket data before the deadline")
        self._sock.settimeout(remaining)
        try:
            chunk = self._sock.recv(1 << 16)
        except TimeoutError:
            raise TimeoutError("no WebSocket data before the deadline") from None
        if not chunk:
            raise WebSocketClosed("the browser closed the connection")
        self._buffer += chunk

    def _read_exact(self, size: int, deadline: float) -> bytes:
        while len(self._buffer) < size:
            self._fill(deadline)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _read_until(self, marker: bytes, deadline: float) -> bytes:
        while (end := self._buffer.find(marker)) < 0:
            self._fill(deadline)
        return self._read_exact(end + len(marker), deadline)

    def _read_frame(self, deadline: float) -> tuple[bool, int, bytes]:
        first, second = self._read_exact(2, deadline)
        fin, opcode, masked, length = bool(first & 0x80), first & 0x0F, bool(second & 0x80), second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read_exact(2, deadline))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read_exact(8, deadline))
        mask = self._read_exact(4, deadline) if masked else b""
        payload = self._read_exact(length, deadline)
        return fin, opcode, _apply_mask(payload, mask) if masked else payload

    # -- bytes out

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        mask = os.urandom(4)
        self._sock.settimeout(10.0)
        self._sock.sendall(header + mask + _apply_mask(payload, mask))

    # -- messages

    def send(self, text: str) -> None:
        """Send one text message."""
        self._send_frame(_OP_TEXT, text.encode())

    def receive(self, timeout: float) -> str:
        """The next text message; TimeoutError after ``timeout`` seconds, WebSocketClosed if the peer closed."""
        deadline = time.monotonic() + timeout
        parts: list[bytes] = []
        while True:
            fin, opcode, payload = self._read_frame(deadline)
            if opcode == _OP_PING:
                self._send_frame(_OP_PONG, payload)
            elif opcode == _OP_CLOSE:
                with contextlib.suppress(OSError):
                    self._send_frame(_OP_CLOSE, payload[:2])
                raise WebSocketClosed(f"the browser closed the WebSocket: {payload[2:].decode(errors='replace')}")
            elif opcode in (_OP_TEXT, _OP_BINARY, _OP_CONT):
                parts.append(payload)
                if fin:
                    return b"".join(parts).decode()
            # a pong, or an opcode reserved for extensions we never negotiated: ignore

    def close(self) -> None:
        """Send a close frame (best effort) and close the socket."""
        with contextlib.suppress(OSError):
            self._send_frame(_OP_CLOSE, struct.pack("!H", 1000))
        self._sock.close()


def _apply_mask(payload: bytes, mask: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``mask`` repeated (RFC 6455 section 5.3), done as one big integer."""
    if not payload:
        return payload
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return value.to_bytes(len(payload), "big")


# ---------- remote values (page -> Python) and local values (Python -> page)

_SPECIAL_NUMBERS = {"NaN": float("nan"), "-0": -0.0, "Infinity": float("inf"), "-Infinity": float("-inf")}


def from_remote(value: Mapping[str, Any]) -> Any:
    """A BiDi remote value as Python: primitives, arrays as lists, objects and maps as dicts, sets as lists.

    Anything else (nodes, functions, promises, ...) comes back as the remote value dict itself.
    """
    kind = value["type"]
    if kind in ("undefined", "null"):
        return None
    if kind in ("string", "boolean"):
        return value["value"]
    if kind == "number":
        number = value["value"]
        return _SPECIAL_NUMBERS[number] if isinstance(number, str) else number
    if kind == "bigint":
        return int(value["value"])
    if kind in ("array", "set"):
        return [from_remote(item) for item in value.get("value", [])]
    if kind in ("object", "map"):
        return {
            (key if isinstance(key, str) else from_remote(key)): from_remote(item)
            for key, item in value.get("value", [])
        }
    return dict(value)


def to_local(value: Any) -> dict[str, Any]:
    """A Python value (None, bool, int, float, str, list/tuple, dict with str keys) as a BiDi local value."""
    if value is None:
        return {"type": "null"}
    if isinstance(value, bool):
        return {"type": "boolean", "value": value}
    if isinstance(value, int | float):
        if value != value:
            return {"type": "number", "value": "NaN"}
        if value in (float("inf"), float("-inf")):
            return {"type": "number", "value": "Infinity" if value > 0 else "-Infinity"}
        return {"type": "number", "value": value}
    if isinstance(value, str):
        return {"type": "string", "value": value}
    if isinstance(value, list | tuple):
        return {"type": "array", "value": [to_local(item) for item in value]}
    if isinstance(value, Mapping):
        return {"type": "object", "value": [[str(key), to_local(item)] for key, item in value.items()]}
    raise TypeError(f"cannot send {type(value).__name__} to the page")


# ---------- Firefox


class BiDiError(RuntimeError):
    """Firefox answered a command with an error (``error`` is the BiDi error code)."""

    def __init__(self, method: str, error: str, message: str) -> None:
        super().__init__(f"{method}: {error}: {message}")
        self.error = error


class JavaScriptError(RuntimeError):
    """A script run by ``evaluate`` or ``call`` threw (or its promise rejected)."""


# Prefs a test run needs (each one checked by leaving it out): the fake camera, no permission prompt, the
# fake camera counted as a real capture (otherwise Firefox gathers ICE candidates on the "default route"
# address only, and a loopback-only namespace has none), and host candidates on loopback. First-run pages,
# updates and telemetry are already switched off by the prefs the Remote Agent applies to every session.
TEST_PREFS: dict[str, bool | int | str] = {
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "media.navigator.permission.fake": True,
    "media.peerconnection.ice.loopback": True,
}


class Firefox:
    """A headless Firefox driven over WebDriver BiDi; use as a context manager (or call ``close``).

    ``executable`` is the Firefox binary, ``profile`` an empty or throwaway folder that becomes the
    profile (Firefox's log goes to ``profile/firefox.log``), ``prefs`` lands in its ``user.js``.
    Firefox is started in its own process group so ``close`` can kill it with all its child processes.
    """

    def __init__(
        self,
        executable: str | Path,
        profile: Path,
        prefs: Mapping[str, bool | int | str] | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.profile = profile
        self.log_path = profile / "firefox.log"
        self.context = ""
        self._next_id = 0
        self._ws: WebSocket | None = None
        profile.mkdir(parents=True, exist_ok=True)
        lines = [f"user_pref({json.dumps(name)}, {json.dumps(value)});" for name, value in (prefs or {}).items()]
        (profile / "user.js").write_text("\n".join(lines) + "\n")
        (profile / PORT_FILE).unlink(missing_ok=True)
        env = {**os.environ, "MOZ_CRASHREPORTER_DISABLE": "1"}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(executable), "--headless", "--no-remote", "--profile", str(profile),
                 "--remote-debugging-port=0", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )  # fmt: skip
        try:
            port = self._wait_for_port(startup_timeout)
            self._ws = WebSocket("127.0.0.1", port, "/session")
            self.command("session.new", {"capabilities": {}})
            contexts = self.command("browsingContext.getTree", {"maxDepth": 0})["contexts"]
            self.context = contexts[0]["context"]
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Firefox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log_tail(self, size: int = 4000) -> str:
        """The end of Firefox's own output (stdout and stderr), for failure messages."""
        with contextlib.suppress(OSError):
            return self.log_path.read_bytes()[-size:].decode(errors="replace")
        return ""

    def _wait_for_port(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        port_file = self.profile / PORT_FILE
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"firefox exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError, ValueError, KeyError):  # not there yet, or half written
                return int(json.loads(port_file.read_text())["ws_port"])
            time.sleep(0.1)
        raise TimeoutError(f"firefox did not open its WebDriver BiDi port in {timeout:.0f} s:\n{self.log_tail()}")

    # -- protocol

    def command(self, method: str, params: Mapping[str, Any] | None = None, timeout: float = 30.0) -> Any:
        """Send one BiDi command and return its ``result``; events that arrive meanwhile are dropped."""
        if self._ws is None:
            raise RuntimeError("the BiDi connection is closed")
        self._next_id += 1
        command_id = self._next_id
        self._ws.send(json.dumps({"id": command_id, "method": method, "params": dict(params or {})}))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{method}: no answer in {timeout:.0f} s")
            message = json.loads(self._ws.receive(remaining))
            if message.get("id") != command_id:
                if message.get("type") == "error":  # an error not tied to a command: malformed message
                    raise BiDiError(method, message.get("error", "?"), message.get("message", ""))
                continue  # an event
            if message.get("type") == "error":
                raise BiDiError(method, message.get("error", "?"), message.get("message", ""))
            return message["result"]

    def _script_result(self, result: Mapping[str, Any]) -> Any:
        if result["type"] == "exception":
            details = result["exceptionDetails"]
            raise JavaScriptError(f"{details.get('text', 'exception')} (line {details.get('lineNumber', '?')})")
        return from_remote(result["result"])

    # -- page

    def navigate(self, url: str, timeout: float = 30.0) -> None:
        """Load ``url`` in the tab and wait for its load event."""
        params = {"context": self.context, "url": url, "wait": "complete"}
        self.command("browsingContext.navigate", params, timeout=timeout)

    def evaluate(self, expression: str, timeout: float = 30.0) -> Any:
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        params = {"expression": expression, "target": {"context": self.context}, "awaitPromise": True}
        return self._script_result(self.command("script.evaluate", params, timeout=timeout))

    def call(self, function: str, *args: Any, timeout: float = 30.0) -> Any:
        """Call a JavaScript function declaration (e.g. ``"(a, b) => a + b"``) with JSON-like ``args``."""
        params = {
            "functionDeclaration": function,
            "arguments": [to_local(arg) for arg in args],
            "target": {"context": self.context},
            "awaitPromise": True,
        }
        return self._script_result(self.command("script.callFunction", params, timeout=timeout))

    def wait_for(self, expression: str, timeout: float = 20.0, interval: float = 0.1) -> Any:
        """Poll a JavaScript expression until it is truthy and return its value; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"still falsy after {timeout:.0f} s: {expression}")
            time.sleep(interval)

    def click(self, selector: str) -> None:
        """Click the first element matching a CSS selector with real (trusted) mouse input at its centre."""
        params = {"context": self.context, "locator": {"type": "css", "value": selector}, "maxNodeCount": 1}
        nodes = self.command("browsingContext.locateNodes", params)["nodes"]
        if not nodes:
            raise LookupError(f"no element matches {selector!r}")
        self.call("(s) => document.querySelector(s).scrollIntoView({block: 'center'})", selector)
        element = {"type": "element", "element": {"sharedId": nodes[0]["sharedId"]}}
        mouse = {
            "type": "pointer",
            "id": "mouse",
            "parameters": {"pointerType": "mouse"},
            "actions": [
                {"type": "pointerMove", "x": 0, "y": 0, "origin": element},
                {"type": "pointerDown", "button": 0},
                {"type": "pointerUp", "button": 0},
            ],
        }
        self.command("input.performActions", {"context": self.context, "actions": [mouse]})

    # -- shutdown

    def close(self) -> None:
        """Ask Firefox to quit, then kill its process group whatever happened; safe to call twice."""
        if self._ws is not None:
            with contextlib.suppress(Exception):
                self.command("browser.close", timeout=5.0)
            self._ws.close()
            self._ws = None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5.0)
        # Content, socket, GPU and RDD processes share the group Firefox leads (start_new_session).
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break  # nothing left in the group
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5.0)
            time.sleep(0.2)  # let children that got SIGTERM go before the SIGKILL round
