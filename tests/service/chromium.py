"""Headless Chromium for the browser tests: where it is, its flags, a .y4m fake camera, starting the page's stream."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from training.bench.browser import FLAGS

CHROMIUM = Path("/usr/bin/chromium")
SIZE = (640, 480)
CHROMIUM_FLAGS = FLAGS


def write_y4m(path: Path, frames: int = 60) -> Path:
    """A 640x480 30 fps clip: colour gradients with a slowly moving disc (4:2:0, what Chromium reads)."""
    width, height = SIZE
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width, y / height, 0.25 + 0.5 * (x + y) / (width + height)], axis=-1)
    with path.open("wb") as handle:
        handle.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        for index in range(frames):
            rgb = (base * 255).astype(np.uint8)
            cv2.circle(rgb, (200 + 4 * index, 240), 60, (250, 220, 40), -1)
            handle.write(b"FRAME\n" + cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


def start_streaming(page: object, url: str) -> None:
    """The page painting on the server (?paint=server: these tests are about the WebRTC path)."""
    page.goto(url + ("&" if "?" in url else "/?") + "paint=server")  # type: ignore[attr-defined]
    page.wait_for_selector(".card input[type=range]")  # type: ignore[attr-defined]
    page.click("#start")  # type: ignore[attr-defined]
    page.wait_for_function("window.livestyle.status === 'live'", timeout=20_000)  # type: ignore[attr-defined]
    page.wait_for_function(  # type: ignore[attr-defined]
        "document.getElementById('stylized').videoWidth > 0", timeout=20_000
    )
