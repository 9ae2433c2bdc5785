"""Painting in the viewer's browser, in real headless Chromium: the shipped realtime model in onnxruntime-web
(as `make setup` installs it) gives Python onnxruntime's pixels, the page paints the camera with no request to the
server per frame, keeps painting with the API blocked, chooses and says why, and falls back to the server when the
runtime is missing. Run inside a loopback-only namespace like the other browser tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from chromium import CHROMIUM
from conftest import LiveServer
from painting_reference import MODELS, PAINT, fixed_frame, python_reference

from service import contract, web_runtime
from service.settings import Settings
from training.bench.browser import FLAGS, loopback_only

pytestmark = pytest.mark.browser


WEBGPU_MAX, WEBGPU_MEAN = 8, 1.0  # out of 255: WebGPU against Python onnxruntime, on the software adapter

if not CHROMIUM.exists():
    pytest.skip("chromium not installed (apt-get install -y chromium)", allow_module_level=True)
if not loopback_only():
    pytest.skip(
        "needs a loopback-only network namespace: run tests/service/run_browser_tests.sh", allow_module_level=True
    )
if not web_runtime.runtime_status(web_runtime.DEFAULT_DIR).available:
    pytest.skip(
        "onnxruntime-web is not installed: make setup (python -m service.web_runtime install)", allow_module_level=True
    )
sync_api = pytest.importorskip("playwright.sync_api")

PAINTED_PIXELS = """() => {  // the shown canvas at 160x120, whatever size the governor paints at
  const c = document.getElementById('painted');
  const copy = document.createElement('canvas'); copy.width = 160; copy.height = 120;
  const g = copy.getContext('2d'); g.drawImage(c, 0, 0, 160, 120);
  return Array.from(g.getImageData(0, 0, 160, 120).data.filter((_, i) => i % 4 !== 3));
}"""


@pytest.fixture(scope="module")
def realtime() -> contract.ModelEntry:
    return next(e for e in contract.read_manifest(MODELS / contract.MANIFEST_NAME) if e.name == "realtime")


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with LiveServer(Settings(models_dir=MODELS, dream=False, ease_frames=0, ice_loopback=True)) as live:
        yield live


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(chromium: Any, url: str) -> Any:
    page = chromium.new_page()
    page.goto(url)
    page.wait_for_selector(".card input[type=range]")
    return page


def test_the_browser_paints_the_servers_pixels(
    chromium: Any, server: LiveServer, realtime: contract.ModelEntry
) -> None:
    """WASM in Chromium against Python onnxruntime: one style, a 50/50 blend, and strength with kept colours,
    within 1/255 on every pixel; the runtime ran cross-origin isolated on more than one thread."""
    page = open_page(chromium, server.url)
    assert page.evaluate("window.livestyle.loadPainter()") is True
    painter = page.evaluate(
        "(({backend, threads, isolated}) => ({backend, threads, isolated}))(window.livestyle.paint.painter)"
    )
    assert painter["backend"] == "wasm" and painter["isolated"] is True
    rgb = fixed_frame()
    h, w = rgb.shape[:2]
    rgba = np.concatenate([rgb, np.full((h, w, 1), 255, np.uint8)], axis=-1).reshape(-1).tolist()
    first, second = realtime.styles[1], realtime.styles[4]
    for weights, strength, keep in (
        ({first: 1.0}, 1.0, False),
        ({first: 0.5, second: 0.5}, 1.0, False),
        ({second: 1.0}, 0.6, True),
    ):
        got = np.array(page.evaluate(PAINT, [rgba, w, h, weights, strength, keep]), np.uint8).reshape(h, w, 4)
        expected = python_reference(realtime, rgb, weights, strength, keep)
        difference = np.abs(got[..., :3].astype(int) - expected.astype(int))
        assert difference.max() <= 1, (weights, strength, keep, int(difference.max()))
        assert np.abs(expected.astype(int) - rgb.astype(int)).mean() > 10  # it painted something


@pytest.mark.parametrize("painters", [1, 2])
def test_the_page_paints_here_without_asking_the_server_and_on_with_the_api_blocked(
    chromium: Any, server: LiveServer, realtime: contract.ModelEntry, painters: int
) -> None:
    """One painter, and two at once (each with its own worker and session): the page shows their pictures in
    camera order, and a blend change reaches every painter without a request."""
    page = chromium.new_page()
    page.goto(f"{server.url}/?paint=browser&painters={painters}")
    page.wait_for_selector(".card input[type=range]")
    page.click("#start")
    page.wait_for_function(
        "window.livestyle.status === 'live' && window.livestyle.paint.mode === 'browser'", timeout=30_000
    )
    page.wait_for_function("window.livestyle.paint.painter.stats().painted > 5", timeout=30_000)
    assert "this browser" in page.inner_text("#paint-why") and page.is_disabled("#brush")
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    before = np.asarray(page.evaluate(PAINTED_PIXELS), np.float32)
    other = realtime.styles[4]
    page.click(f".card[data-style={other}] button.thumb")  # that painting alone
    time.sleep(1.5)
    after = np.asarray(page.evaluate(PAINTED_PIXELS), np.float32)
    assert np.abs(after - before).mean() > 5, "a new painting did not change the picture"
    assert not [u for u in asked if "/api/" in u], f"a blend change asked the server: {asked}"
    page.route("**/api/**", lambda route: route.abort())
    painted = page.evaluate("window.livestyle.paint.painter.stats().painted")
    time.sleep(2.0)
    assert page.evaluate("window.livestyle.paint.painter.stats().painted") > painted + 5
    stats = page.evaluate("window.livestyle.paint.painter.stats()")
    assert stats["painters"] == painters and stats["painted"] > stats["late"]
    print(f"in-browser painting: {stats}, shown {page.evaluate('window.livestyle.fpsShown')} fps")


def test_auto_chooses_by_measurement_and_says_why(chromium: Any, server: LiveServer) -> None:
    page = open_page(chromium, server.url)
    page.click("#start")
    page.wait_for_function("window.livestyle.status === 'live'", timeout=30_000)
    mode = page.evaluate("window.livestyle.paint.mode")
    why = page.inner_text("#paint-why")
    assert mode in ("browser", "server") and "fps here" in why and "server aims for" in why, why
    assert page.inner_text("#paint-where") == ("this browser" if mode == "browser" else "server")
    page.click("input[name=paint-mode][value=server] + span")  # switch: the camera and the look stay
    page.wait_for_function(
        "window.livestyle.paint.mode === 'server' && window.livestyle.status === 'live'", timeout=30_000
    )
    assert page.evaluate("window.livestyle.stream !== null")


def test_without_the_runtime_the_page_says_so_and_paints_on_the_server(chromium: Any, tmp_path: Path) -> None:
    settings = Settings(models_dir=MODELS, dream=False, ice_loopback=True, web_runtime_dir=tmp_path / "none")
    with LiveServer(settings) as live:
        page = open_page(chromium, f"{live.url}/?paint=browser")
        page.click("#start")
        page.wait_for_function(
            "window.livestyle.paint.mode === 'server' && window.livestyle.status === 'live'", timeout=30_000
        )
        assert "not installed" in page.inner_text("#paint-why")


def test_a_style_added_on_the_server_reaches_the_browser_and_paints(chromium: Any, tmp_path: Path) -> None:
    """The page paints here; a style learned on the server changes the model's sha256: the page reloads the
    model (the blend kept by name), the new card appears, and choosing it changes the painted picture."""
    pytest.importorskip("torch", reason="learning a style needs torch (the train extra)")
    import httpx
    from conftest import learnable_models, picture, png

    from service.settings import StyleSettings

    models, photos = learnable_models(tmp_path)
    style_settings = StyleSettings(dir=tmp_path / "store", photos=photos, nice=0)
    settings = Settings(models_dir=models, dream=False, ice_loopback=True, ease_frames=0)
    with LiveServer(settings, style_settings) as live:
        page = open_page(chromium, f"{live.url}/?paint=browser")
        page.click("#start")
        page.wait_for_function(
            "window.livestyle.paint.mode === 'browser' && window.livestyle.paint.painter.stats().painted > 3",
            timeout=30_000,
        )
        before_sha = page.evaluate("window.livestyle.paint.painter.sha256")
        reply = httpx.post(
            f"{live.url}/api/styles",
            files={"image": ("dots.png", png(picture(41, 120)))},
            data={"name": "dots", "steps": "3"},
            timeout=30,
        )
        assert reply.status_code == 202, reply.text
        page.wait_for_selector(".card[data-style=dots]", timeout=120_000)
        page.wait_for_function(f"window.livestyle.paint.painter.sha256 !== '{before_sha}'", timeout=30_000)
        assert page.evaluate("window.livestyle.paint.painter.info.model.styles").count("dots") == 1
        before = np.asarray(page.evaluate(PAINTED_PIXELS), np.float32)
        page.click(".card[data-style=dots] button.thumb")
        time.sleep(1.5)
        after = np.asarray(page.evaluate(PAINTED_PIXELS), np.float32)
        assert np.abs(after - before).mean() > 1.0, "the added style did not change the painted picture"
        assert page.evaluate("window.livestyle.paint.mode") == "browser"


def test_webgpu_through_the_software_adapter_paints_near_the_servers_pixels(realtime: contract.ModelEntry) -> None:
    """WebGPU forced (?backend=webgpu) on Chromium's SwiftShader adapter, at a small size: the same pixels within a
    stated tolerance (WebGPU kernels round differently: at most WEBGPU_MAX / 255 on a pixel, a mean under
    WEBGPU_MEAN / 255). The page never picks this adapter by itself: it is a fallback, slower than WASM."""
    flags = [f for f in FLAGS if f != "--disable-gpu"] + ["--enable-unsafe-webgpu"]
    settings = Settings(models_dir=MODELS, dream=False)
    with LiveServer(settings) as live, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=flags)
        try:
            page = open_page(browser, f"{live.url}/?backend=webgpu")
            if not page.evaluate("!!navigator.gpu && navigator.gpu.requestAdapter().then((a) => !!a)"):
                pytest.skip("this Chromium exposes no WebGPU adapter")
            assert page.evaluate("window.livestyle.loadPainter()") is True, page.evaluate(
                "window.livestyle.paint.loadError"
            )
            assert page.evaluate("window.livestyle.paint.painter.backend") == "webgpu"
            rgb = fixed_frame()[:48, :64]
            h, w = rgb.shape[:2]
            rgba = np.concatenate([rgb, np.full((h, w, 1), 255, np.uint8)], axis=-1).reshape(-1).tolist()
            weights = {realtime.styles[1]: 0.5, realtime.styles[4]: 0.5}
            got = np.array(page.evaluate(PAINT, [rgba, w, h, weights, 1.0, False]), np.uint8).reshape(h, w, 4)
        finally:
            browser.close()
    difference = np.abs(got[..., :3].astype(int) - python_reference(realtime, rgb, weights, 1.0, False).astype(int))
    print(f"WebGPU (SwiftShader) against Python onnxruntime: max {difference.max()}, mean {difference.mean():.3f}")
    assert difference.max() <= WEBGPU_MAX and difference.mean() <= WEBGPU_MEAN
