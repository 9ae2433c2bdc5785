"""Real headless Chromium over WebRTC on loopback (see ../shared/WEBRTC-TESTING.md).

Run inside a network namespace that holds only ``lo``: tests/service/run_browser_tests.sh.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from chromium import CHROMIUM, SIZE, start_streaming
from conftest import SLOW, LiveServer

from service.look import LOOK_KEYS, LookUpdate
from service.settings import Settings
from training.bench.browser import (
    CANVAS_CAMERA,
    READ_IDS,
    SET_SLIDERS,
    loopback_only,
    shown_fps_samples,
)

pytestmark = pytest.mark.browser


if not CHROMIUM.exists():
    pytest.skip("chromium not installed (apt-get install -y chromium chromium-driver)", allow_module_level=True)
if not loopback_only():
    pytest.skip(
        "needs a loopback-only network namespace: run tests/service/run_browser_tests.sh",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(settings.model_copy(update={"ease_frames": 3, "dream_max_side_cpu": 96})) as live:
        yield live


GRAB_FRAME = """() => {
  const v = document.getElementById('stylized');
  const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d'); g.drawImage(v, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  return Array.from(d.filter((_, i) => i % 4 !== 3 && i % 97 === 0));
}"""


def test_realtime_model_in_chromium(browser: object, server: LiveServer) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    start_streaming(page, server.url)
    size = page.evaluate(
        "[document.getElementById('stylized').videoWidth, document.getElementById('stylized').videoHeight]"
    )
    assert tuple(size) == SIZE

    time.sleep(2.0)
    samples = shown_fps_samples(page.evaluate, 6)
    server_stats = page.evaluate("window.livestyle.serverStats")
    print(f"realtime model: frames shown per second {samples}, server {server_stats}")
    assert statistics.median(samples) >= 15, f"frames shown per second: {samples}"

    before = np.asarray(page.evaluate(GRAB_FRAME), dtype=np.float32)
    page.evaluate(SET_SLIDERS, {"starry_night": 0, "the_scream": 100})
    time.sleep(1.5)
    after = np.asarray(page.evaluate(GRAB_FRAME), dtype=np.float32)
    assert np.abs(after - before).mean() > 40, "moving the sliders did not change the picture"

    page.check("#stabilize")  # steady: the server stabilizes each frame with optical flow
    deadline = time.monotonic() + 5
    while not (page.evaluate("window.livestyle.serverStats") or {}).get("stabilized") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert page.evaluate("window.livestyle.serverStats")["stabilized"] is True

    replies = page.evaluate("window.livestyle.replies")  # the Brush slider: strokes twice as large
    page.evaluate(
        "() => { const b = document.getElementById('brush'); b.value = '2'; b.dispatchEvent(new Event('input')); }"
    )
    page.wait_for_function(f"window.livestyle.replies > {replies}", timeout=5_000)
    assert page.evaluate("document.getElementById('brush-value').textContent") == "2x"
    assert page.evaluate("window.livestyle.brush") == 2
    assert page.evaluate("window.livestyle.errors") == []
    page.click("#stop")


# The canvas camera (frame id as black/white blocks) and its decoder are the benchmark's, so the test and
# table 4 of BENCHMARKS.md measure latency the same way; the tiny model's styles keep the strip readable.


@pytest.fixture
def fixed_size_server(settings: Settings) -> Iterator[LiveServer]:
    """Adaptive resolution off: the slow model stays slow, so frames must be dropped."""
    with LiveServer(settings.model_copy(update={"ease_frames": 3, "adaptive_resolution": False})) as live:
        yield live


def test_slow_model_drops_frames_and_latency_stays_under_a_second(
    browser: object, fixed_size_server: LiveServer
) -> None:
    server = fixed_size_server
    page = browser.new_page()  # type: ignore[attr-defined]
    page.add_init_script(CANVAS_CAMERA)
    page.goto(server.url)
    page.wait_for_selector(f"input[name=model][value={SLOW}]", state="attached")
    page.click(f"input[name=model][value={SLOW}] + span")
    page.click("#start")
    page.wait_for_function("window.livestyle.status === 'live'", timeout=20_000)
    page.wait_for_function("document.getElementById('stylized').videoWidth === 640", timeout=20_000)
    page.evaluate(READ_IDS)
    time.sleep(10.0)
    latency = page.evaluate("window.__latency")
    stats = page.evaluate("window.livestyle.serverStats")
    assert len(latency) >= 10, f"too few decodable frames: {len(latency)}"
    later = latency[len(latency) // 3 :]  # after start-up
    median, p90 = float(np.median(later)), float(np.percentile(later, 90))
    print(f"slow model: {len(latency)} frames, latency median {median:.0f} ms p90 {p90:.0f} ms, stats {stats}")
    assert p90 < 1000, f"latency grew: median {median:.0f} ms, p90 {p90:.0f} ms"
    assert stats["dropped"] > 0 and stats["infer_ms_p50"] > 100, stats
    page.click("#stop")


def test_dream_controls_blend_the_dream_style_and_switch_to_live_deepdream(browser: object, server: LiveServer) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    start_streaming(page, server.url)
    # dream styles are not painting cards; they come in through the dream control
    cards = page.evaluate("[...document.querySelectorAll('.card')].map((c) => c.dataset.style)")
    assert cards == ["starry_night", "the_scream"]
    time.sleep(1.0)
    painted = np.asarray(page.evaluate(GRAB_FRAME), dtype=np.float32)
    page.click("input[name=dream-mode][value=blend] + span")
    assert page.evaluate("document.getElementById('dream-layer').value") == "dream_relu3_3"
    page.evaluate("""() => { const s = document.getElementById('dream-intensity');
      s.value = '100'; s.dispatchEvent(new Event('input', {bubbles: true})); }""")
    time.sleep(1.5)
    dreamed = np.asarray(page.evaluate(GRAB_FRAME), dtype=np.float32)
    state = page.evaluate("[window.livestyle.dream, window.livestyle.errors, window.livestyle.replies]")
    assert np.abs(dreamed - painted).mean() > 40, f"the dream style did not change the picture: {state}"

    available = page.evaluate("window.livestyle.dreamInfo.available")
    iterative = page.locator("input[name=dream-mode][value=iterative]")
    assert iterative.is_disabled() == (not available)
    if available:
        page.click("input[name=dream-mode][value=iterative] + span")
        page.select_option("#dream-layer", "relu3_1")
        page.evaluate("""() => { const s = document.getElementById('dream-iterations');
          s.value = '1'; s.dispatchEvent(new Event('input', {bubbles: true})); }""")
        deadline = time.monotonic() + 40  # torch and the VGG19 trunk load on the first dreamed frame
        change = 0.0
        while change <= 10 and time.monotonic() < deadline:
            time.sleep(1.0)
            change = float(np.abs(np.asarray(page.evaluate(GRAB_FRAME), dtype=np.float32) - dreamed).mean())
        assert change > 10, "live DeepDream did not replace the dream style"
        shown, served = [], []
        for _ in range(5):
            time.sleep(1.0)
            shown.append(page.evaluate("window.livestyle.fpsShown"))
            served.append(page.evaluate("window.livestyle.serverStats.fps_out"))
        print(f"live DeepDream: frames shown per second {shown}, served {served}")
        assert sum(shown) >= 1 and sum(served) > 0, (shown, served)
    assert page.evaluate("window.livestyle.errors") == []
    page.click("#stop")


def test_the_pages_look_is_one_control_message_the_server_takes(browser: object, server: LiveServer) -> None:
    """look.js builds the whole look from the page's state (what the data channel, the offer and the in-browser
    painter read): every control key, percent as fractions, valid for the server's one vocabulary."""
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(server.url)  # type: ignore[attr-defined]
    page.wait_for_selector(".card input[type=range]")  # type: ignore[attr-defined]
    page.evaluate(SET_SLIDERS, {"starry_night": 30, "the_scream": 90})  # type: ignore[attr-defined]
    page.evaluate(  # type: ignore[attr-defined]
        "() => { const s = document.getElementById('strength'); s.value = '40'; s.dispatchEvent(new Event('input')); }"
    )
    page.check("#preserve-color")  # type: ignore[attr-defined]
    message = page.evaluate("import('/look.js').then((look) => look.lookMessage(window.livestyle))")  # type: ignore
    assert set(message) == set(LOOK_KEYS) - {"octaves"}, message
    update = LookUpdate.parse(message)
    assert update.strength == 0.4 and update.preserve_color is True and update.mode == "style"
    assert update.weights == pytest.approx({"starry_night": 0.25, "the_scream": 0.75})
    dream = page.evaluate("window.livestyle.dreamInfo.defaults")  # type: ignore[attr-defined]
    assert (update.layer, update.iterations) == (dream["layer"], dream["iterations"])
    assert update.feedback == pytest.approx(dream["feedback"]) and update.intensity == pytest.approx(dream["intensity"])


def test_the_page_takes_the_token_once_and_streams(browser: object, settings: Settings) -> None:
    token = "browser-token-0123456789abcdef"
    with LiveServer(settings.model_copy(update={"api_token": token, "ease_frames": 3})) as guarded:
        page = browser.new_page()  # type: ignore[attr-defined]
        page.goto(guarded.url)  # without the token: the page says what is needed
        page.wait_for_function("document.getElementById('status').textContent === 'token needed'", timeout=10_000)
        assert "token" in page.inner_text("#toast")
        start_streaming(page, f"{guarded.url}/?token={token}")
        assert "token" not in page.url  # dropped from the address bar, kept for the tab
        thumbnail = page.evaluate("document.querySelector('.card img').src")
        assert thumbnail.startswith("blob:")  # fetched with the token
        assert page.evaluate("window.livestyle.errors") == []
        page.click("#stop")
        page.reload()  # the same tab keeps it
        page.wait_for_selector(".card input[type=range]")
        assert page.evaluate("window.livestyle.status") != "error"


def test_a_painting_added_from_the_page_joins_the_gallery_while_streaming(browser: object, tmp_path: Path) -> None:
    """Pick a picture, name it, Learn it: the stream keeps running through the model swap, and the new style
    arrives as a card with its thumbnail and slider that changes the picture."""
    pytest.importorskip("torch", reason="learning a style needs torch (the train extra)")
    from conftest import learnable_models, picture

    from service.settings import StyleSettings

    models, photos = learnable_models(tmp_path)
    painting = tmp_path / "my sketch.png"
    cv2.imwrite(str(painting), picture(40, 128))
    style_settings = StyleSettings(dir=tmp_path / "store", photos=photos, minutes=0.05, nice=0)
    with LiveServer(Settings(models_dir=models, ice_loopback=True, ease_frames=3), style_settings) as live:
        page = browser.new_page()  # type: ignore[attr-defined]
        start_streaming(page, live.url)
        page.wait_for_function("window.livestyle.learning && window.livestyle.learning.available")
        page.set_input_files("#add-file", str(painting))
        assert page.input_value("#add-name") == "my_sketch"
        page.click("#add-go")
        card = ".card[data-style=my_sketch]"
        page.wait_for_selector(f"{card} input[type=range]", timeout=120_000)
        page.wait_for_function(f"document.querySelector('{card} img').naturalWidth > 0", timeout=10_000)
        assert page.evaluate("window.livestyle.status") == "live" and page.evaluate("window.livestyle.errors") == []
        before = np.asarray(page.evaluate(GRAB_FRAME), dtype=np.float32)
        page.evaluate(SET_SLIDERS, {"stripes": 0, "checks": 0, "my_sketch": 100})
        time.sleep(1.5)
        after = np.asarray(page.evaluate(GRAB_FRAME), dtype=np.float32)
        assert np.abs(after - before).mean() > 2, "the new style's slider did not change the picture"
        assert statistics.median(shown_fps_samples(page.evaluate, 3)) > 0
        page.click("#stop")
