"""Table 4: end to end in headless Chromium over WebRTC at 640x480, per model (the service's browser tests'
recipe, ../shared/WEBRTC-TESTING.md): frames shown per second and glass-to-glass latency.

Latency comes from a frame-id strip (black/white blocks) drawn into a canvas camera and decoded from the
returned video; a style that makes the strip unreadable gives 'n/a' there, and the server's own inference
times are reported beside it. Needs /usr/bin/chromium, playwright and a loopback-only network namespace
(``make bench`` runs the suite under ``unshare -n``).
"""

from __future__ import annotations

import logging
import socket
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service.settings import Settings
from training.bench.report import Table, fmt

log = logging.getLogger(__name__)
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
]
GOAL_FPS = 15.0

# A canvas camera of any size at 30 fps: a gradient, a moving square, a black and a white block, then the frame
# counter as 16 blocks of 1/20 of the width.
CAMERA = """([W, H]) => {
  const B = Math.floor(W / 20), BITS = 16;
  window.__sent = new Map(); window.__latency = [];
  navigator.mediaDevices.getUserMedia = async () => {
    const c = document.createElement('canvas'); c.width = W; c.height = H;
    const g = c.getContext('2d'); let id = 0;
    const draw = () => {
      id = (id + 1) & 0xffff;
      const grad = g.createLinearGradient(0, 0, W, H);
      grad.addColorStop(0, '#3060c0'); grad.addColorStop(1, '#e0a040');
      g.fillStyle = grad; g.fillRect(0, 0, W, H);
      g.fillStyle = '#30c080'; g.fillRect(W / 6 + (id * 5) % (W / 2), H / 2.4, W / 8, W / 8);
      g.fillStyle = '#000'; g.fillRect(0, 0, B, B); g.fillStyle = '#fff'; g.fillRect(B, 0, B, B);
      for (let i = 0; i < BITS; i++) {
        g.fillStyle = (id >> i) & 1 ? '#fff' : '#000'; g.fillRect(2 * B + i * B, 0, B, B);
      }
      window.__sent.set(id, performance.now());
    };
    draw(); setInterval(draw, 33);
    return c.captureStream(30);
  };
}"""

# Reads the counter from what is on screen: the painted canvas (each animation frame, a counter once) or the
# video (each decoded frame); into window.__latency, or window.__lat[element] for another video element.
READ_SCREEN = """([W, fromCanvas, element]) => {
  const B = Math.floor(W / 20), BITS = 16;
  const source = document.getElementById(element || (fromCanvas ? 'painted' : 'stylized'));
  const latency = element ? ((window.__lat = window.__lat || {})[element] = []) : window.__latency;
  const c = document.createElement('canvas'); c.width = W; c.height = B;
  const g = c.getContext('2d', {willReadFrequently: true});
  const seen = new Set();
  const q = Math.floor(B / 4);
  const level = (d, x0) => {
    let sum = 0, n = 0;
    for (let y = q; y < B - q; y += 2) for (let x = x0 + q; x < x0 + B - q; x += 2) {
      const i = 4 * (y * W + x); sum += d[i] + d[i + 1] + d[i + 2]; n += 3;
    }
    return sum / n;
  };
  const read = () => {
    const sw = fromCanvas ? source.width : source.videoWidth, sh = fromCanvas ? source.height : source.videoHeight;
    if (!sw) return;
    g.drawImage(source, 0, 0, sw, sw * B / W, 0, 0, W, B);
    const d = g.getImageData(0, 0, W, B).data;
    const black = level(d, 0), white = level(d, B);
    if (Math.abs(white - black) < 60) return;
    let id = 0;
    for (let i = 0; i < BITS; i++) {
      const l = level(d, 2 * B + i * B);
      if (Math.abs(l - white) < Math.abs(l - black)) id |= 1 << i;
    }
    const sent = window.__sent.get(id);
    if (sent !== undefined && !seen.has(id) && performance.now() - sent < 5000) {
      seen.add(id); latency.push(performance.now() - sent);
    }
  };
  const next = fromCanvas ? (f) => requestAnimationFrame(f) : (f) => source.requestVideoFrameCallback(f);
  const tick = () => { read(); next(tick); };
  next(tick);
}"""

# The 640x480 camera and its counter read from the decoded video (tables 4 and the browser tests).
CANVAS_CAMERA = f"({CAMERA})([640, 480])"
READ_IDS = f"() => ({READ_SCREEN})([640, false])"


SET_SLIDERS = """(weights) => {
  for (const [style, value] of Object.entries(weights)) {
    const slider = document.querySelector(`input[type=range][data-style="${style}"]`);
    slider.value = String(value);
    slider.dispatchEvent(new Event('input', {bubbles: true}));
  }
}"""
"""Page function: move the style sliders as a person would (``{style: 0..100}``)."""


def loopback_only() -> bool:
    """Whether this process sees only the loopback interface (``unshare -n`` with lo up)."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def shown_fps_samples(evaluate: Callable[[str], Any], count: int) -> list[float]:
    """The page's frames-shown-per-second counter, read once a second ``count`` times (any browser driver)."""
    samples = []
    for _ in range(count):
        time.sleep(1.0)
        samples.append(float(evaluate("window.livestyle.fpsShown")))
    return samples


def unavailable_reason() -> str | None:
    """Why the browser table cannot run here, or None."""
    if not CHROMIUM.exists():
        return "no /usr/bin/chromium (apt-get install chromium chromium-driver)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    if not loopback_only():
        return "not in a loopback-only network namespace (run under `unshare -n`, as `make bench` does)"
    return None


class _Server:
    """The service app under uvicorn on 127.0.0.1, in a background thread."""

    def __init__(self, settings: Settings) -> None:
        import uvicorn

        from service.http.app import create_app

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            create_app(settings.model_copy(update={"port": port})), host="127.0.0.1", port=port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("benchmark server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@dataclass(frozen=True)
class BrowserResult:
    fps: float
    latency_median: float | None
    latency_p90: float | None
    decoded: int
    server: dict[str, Any]
    server_cpu: float  # percent of one core used by the server process (200 = both cores of this machine)


def _one_model(browser: Any, url: str, model: str, seconds: float) -> BrowserResult:
    page = browser.new_page()
    try:
        page.add_init_script(CANVAS_CAMERA)
        page.goto(f"{url}/?paint=server")  # the server path (the in-browser one has its own table)
        page.wait_for_selector(f"input[name=model][value={model}]", state="attached")
        page.click(f"input[name=model][value={model}] + span")
        page.click("#start")
        page.wait_for_function("window.livestyle.status === 'live'", timeout=30_000)
        page.wait_for_function("document.getElementById('stylized').videoWidth === 640", timeout=30_000)
        page.evaluate(READ_IDS)
        time.sleep(2.0)  # start-up
        page.evaluate("window.__latency.length = 0")
        cpu_start, wall_start = time.process_time(), time.monotonic()  # the server runs in this process
        fps = shown_fps_samples(page.evaluate, max(1, round(seconds)))
        server_cpu = 100.0 * (time.process_time() - cpu_start) / (time.monotonic() - wall_start)
        latency = [float(x) for x in page.evaluate("window.__latency")]
        stats = dict(page.evaluate("window.livestyle.serverStats") or {})
        page.click("#stop")
    finally:
        page.close()
    enough = len(latency) >= 10
    return BrowserResult(
        fps=statistics.median(fps) if fps else float("nan"),
        latency_median=float(np.median(latency)) if enough else None,
        latency_p90=float(np.percentile(latency, 90)) if enough else None,
        decoded=len(latency),
        server=stats,
        server_cpu=server_cpu,
    )


def measure_browser(settings: Settings, models: list[str], seconds: float) -> dict[str, BrowserResult]:
    from playwright.sync_api import sync_playwright

    results = {}
    with _Server(settings) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            for model in models:
                results[model] = _one_model(browser, server.url, model, seconds)
                log.info("browser %s done", model)
        finally:
            browser.close()
    return results


def browser_table(
    results: dict[str, BrowserResult] | None, seconds: float, skipped: str = "", peer: str | None = None
) -> Table:
    table = Table(
        title="4. End to end in headless Chromium (WebRTC, 640x480)",
        header=[
            "model",
            "frames shown/s (median)",
            "latency median ms",
            "latency p90 ms",
            "frames decoded",
            "server infer p50 / p90 ms",
            "stylized at px",
            "server CPU % of one core",
            "server dropped",
        ],
        setup=(
            f"Canvas camera at 30 fps through the service page; {seconds:.0f} s per model after 2 s start-up; "
            "latency from a frame-id strip decoded in the page (n/a: the style made it unreadable); browser "
            "and server share the machine. Server CPU is the server process's CPU time over the wall time "
            "(Chromium's own decoding, encoding and drawing not included); 'stylized at' is the longer side "
            "adaptive resolution settled on (output is 640x480 either way)."
        ),
        goal=f">= {GOAL_FPS:.0f} frames shown per second for the realtime tier (the browser test's floor).",
        skipped=skipped,
    )
    for model, r in (results or {}).items():
        s = r.server
        table.rows.append(
            [
                model + (" (peer)" if model == peer else ""),
                f"{r.fps:.1f}",
                fmt(r.latency_median),
                fmt(r.latency_p90),
                str(r.decoded),
                f"{s.get('infer_ms_p50', 'n/a')} / {s.get('infer_ms_p90', 'n/a')}",
                str(s.get("side", "n/a")),
                f"{r.server_cpu:.0f}",
                str(s.get("dropped", "n/a")),
            ]
        )
    return table
