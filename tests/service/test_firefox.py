"""Real headless Firefox (Debian's firefox-esr) over WebRTC on loopback, driven over WebDriver BiDi.

Stock Firefox speaks WebDriver BiDi itself (client: firefox_bidi.py), so no browser download is needed.
Its fake camera (media.navigator.streams.fake) is a flat colour slowly cycling through saturated hues, with
a strip of blocks along the top. The tiny model's styles are fixed colour transforms, so each stylized frame
is checked against the transform of the camera frame shown beside it at the same moment.

Run inside a network namespace that holds only ``lo``: tests/service/run_browser_tests.sh.
"""

from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import STYLES, LiveServer, reference_output
from firefox_bidi import TEST_PREFS, Firefox

from service.settings import Settings
from training.bench.browser import SET_SLIDERS, loopback_only, shown_fps_samples

pytestmark = pytest.mark.browser

FIREFOX = shutil.which("firefox-esr")
TOLERANCE = 30  # mean abs error per channel: two VP8 trips plus the hue drift over the round trip


if FIREFOX is None:
    pytest.skip("firefox-esr not installed (apt-get install -y firefox-esr)", allow_module_level=True)
if not loopback_only():
    pytest.skip(
        "needs a loopback-only network namespace: run tests/service/run_browser_tests.sh",
        allow_module_level=True,
    )


@pytest.fixture
def firefox(tmp_path: Path) -> Iterator[Firefox]:
    assert FIREFOX is not None
    with Firefox(FIREFOX, tmp_path / "profile", TEST_PREFS) as browser:
        yield browser


@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(settings.model_copy(update={"ease_frames": 3, "dream_max_side_cpu": 96})) as live:
        yield live


# Both videos drawn in the same task: the camera frame and the stylized frame on screen together, as RGB
# triples sampled every `step` pixels below the top eighth (where the fake camera draws its strip).
GRAB_PAIR = """(step) => ['original', 'stylized'].map((id) => {
  const v = document.getElementById(id);
  const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d'); g.drawImage(v, 0, 0);
  const top = Math.ceil(c.height / 8);
  const d = g.getImageData(0, top, c.width, c.height - top).data;
  const out = [];
  for (let y = 0; y < c.height - top; y += step)
    for (let x = 0; x < c.width; x += step) { const i = 4 * (y * c.width + x); out.push(d[i], d[i + 1], d[i + 2]); }
  return out;
})"""


def grab_pair(firefox: Firefox) -> tuple[np.ndarray, np.ndarray]:
    """(camera, stylized) pixels as float32 arrays of shape [N, 1, 3]."""
    camera, stylized = firefox.call(GRAB_PAIR, 10)
    return pixels(camera), pixels(stylized)


def pixels(values: list[int]) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).reshape(-1, 1, 3)


def expected(camera: np.ndarray, style: str) -> np.ndarray:
    """What the tiny model makes of ``camera`` with all weight on ``style``."""
    weights = np.asarray([[1.0 if s == style else 0.0 for s in STYLES]], dtype=np.float32)
    return reference_output(camera.astype(np.uint8), weights).astype(np.float32)


def error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def test_firefox_streams_stylized_video_and_sliders_change_it(firefox: Firefox, server: LiveServer) -> None:
    firefox.navigate(f"{server.url}/?paint=server")
    firefox.wait_for("document.querySelector('.card input[type=range]') !== null")
    firefox.click("#start")
    try:
        firefox.wait_for("window.livestyle.status === 'live'", timeout=20)
        firefox.wait_for("document.getElementById('stylized').videoWidth > 0", timeout=20)
    except TimeoutError:
        state = firefox.evaluate(
            "[window.livestyle.status, window.livestyle.errors, document.getElementById('toast').textContent]"
        )
        pytest.fail(f"never went live: {state}\nfirefox log:\n{firefox.log_tail()}")

    camera_size = firefox.evaluate("(v => [v.videoWidth, v.videoHeight])(document.getElementById('original'))")
    size = firefox.evaluate("(v => [v.videoWidth, v.videoHeight])(document.getElementById('stylized'))")
    assert size == camera_size and size[0] > 0 and size[1] > 0, (size, camera_size)

    time.sleep(2.0)
    samples = shown_fps_samples(firefox.evaluate, 5)
    stats = firefox.evaluate("window.livestyle.serverStats")
    print(f"firefox: {size[0]}x{size[1]}, frames shown per second {samples}, server {stats}")
    assert statistics.median(samples) >= 10, f"frames shown per second: {samples}, server {stats}"

    # starry_night (the default blend) is the tiny model's negative
    camera, before = grab_pair(firefox)
    negative_miss = error(before, expected(camera, "starry_night"))
    assert negative_miss < TOLERANCE, f"the picture is not the negative: error {negative_miss:.1f}"
    assert error(expected(camera, "starry_night"), expected(camera, "the_scream")) > 60, "styles alike here"

    # all weight on the_scream (a channel rotation): the picture follows within a few frames
    firefox.call(SET_SLIDERS, {"starry_night": 0, "the_scream": 100})
    moved = time.monotonic()
    deadline = moved + 10
    while True:
        camera, after = grab_pair(firefox)
        miss = error(after, expected(camera, "the_scream"))
        if miss < TOLERANCE or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    took = time.monotonic() - moved
    print(f"error vs reference: negative {negative_miss:.1f}, rotation {miss:.1f} ({took:.1f} s after the move)")
    assert miss < TOLERANCE, f"the picture did not follow the sliders: error {miss:.1f}"
    assert error(after, before) > 40, "moving the sliders did not change the picture"

    assert firefox.evaluate("window.livestyle.errors") == []
    firefox.click("#stop")
    firefox.wait_for("window.livestyle.status === 'idle'", timeout=10)


def test_firefox_paints_in_the_browser_with_the_servers_pixels(firefox: Firefox) -> None:
    """The in-browser path in Firefox's WASM runtime: the shipped realtime model's pixels within 1/255 of Python
    onnxruntime on a fixed frame (a 50/50 blend), then the camera painted here."""
    from service import web_runtime

    if not web_runtime.runtime_status(web_runtime.DEFAULT_DIR).available:
        pytest.skip("onnxruntime-web is not installed: make setup")
    from painting_reference import MODELS, PAINT, fixed_frame, python_reference

    from service import contract

    realtime = next(e for e in contract.read_manifest(MODELS / contract.MANIFEST_NAME) if e.name == "realtime")
    with LiveServer(Settings(models_dir=MODELS, dream=False, ease_frames=0)) as live:
        firefox.navigate(f"{live.url}/?paint=browser")
        firefox.wait_for("document.querySelector('.card input[type=range]') !== null")
        # compiling the WASM runtime took over a minute on a busy 2-core machine
        loaded = firefox.evaluate("window.livestyle.loadPainter()", timeout=180)
        assert loaded is True, firefox.evaluate("window.livestyle.paint.loadError")
        assert firefox.evaluate("window.livestyle.paint.painter.isolated") is True
        rgb = fixed_frame()
        h, w = rgb.shape[:2]
        rgba = np.concatenate([rgb, np.full((h, w, 1), 255, np.uint8)], axis=-1).reshape(-1).tolist()
        weights = {realtime.styles[1]: 0.5, realtime.styles[4]: 0.5}
        got = np.array(firefox.call(PAINT, [rgba, w, h, weights, 1.0, False], timeout=60), np.uint8)
        expected_rgb = python_reference(realtime, rgb, weights, 1.0, False)
        difference = np.abs(got.reshape(h, w, 4)[..., :3].astype(int) - expected_rgb.astype(int))
        assert difference.max() <= 1, int(difference.max())
        firefox.click("#start")
        try:
            firefox.wait_for(
                "window.livestyle.paint.mode === 'browser' && window.livestyle.paint.painter.stats().painted > 5",
                timeout=60,
            )
        except TimeoutError:
            state = firefox.evaluate(
                "[window.livestyle.status, window.livestyle.paint.mode, "
                "window.livestyle.paint.why, window.livestyle.paint.painter.lastError, "
                "window.livestyle.paint.painter.stats()]"
            )
            pytest.fail(f"never painted here: {state}")
