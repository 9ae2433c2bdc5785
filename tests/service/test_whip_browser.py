"""Clients nobody here wrote: in headless Chromium over loopback, npm's whip-whep (medooze) publishes the fake camera
by WHIP and plays it back painted by WHEP; the view page (view.html) plays the same session.

Run inside a network namespace that holds only ``lo``: tests/service/run_browser_tests.sh.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from chromium import start_streaming
from conftest import LiveServer

from service import web_runtime
from service.settings import Settings

pytestmark = pytest.mark.browser

if not all((web_runtime.WHIP_CLIENTS_DIR / name).is_file() for name in web_runtime.WHIP_FILES):
    pytest.skip(
        f"npm {web_runtime.WHIP_PACKAGE} is not installed: make setup (python -m service.web_runtime install)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api")

TOKEN = "whip-browser-token-0123456789"
BLANK = "/whip-whep-test.html"  # served by the test itself (page.route), on the server's origin
PAGE = """<!doctype html><html><body><video id="v" autoplay playsinline muted></video>
<script type="module">
import { WHIPClient } from "/whip-whep/whip.js";
import { WHEPClient } from "/whip-whep/whep.js";
window.WHIPClient = WHIPClient; window.WHEPClient = WHEPClient; window.clientsLoaded = true;
</script></body></html>"""

PUBLISH = """async ([url, token, codec]) => {
  const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
  const pc = new RTCPeerConnection({ iceServers: [] });
  const transceiver = pc.addTransceiver(stream.getVideoTracks()[0], { direction: "sendonly" });
  const codecs = RTCRtpSender.getCapabilities("video").codecs;
  transceiver.setCodecPreferences(codecs.filter((c) => c.mimeType === codec).concat(
    codecs.filter((c) => c.mimeType === "video/rtx")));
  const whip = new WHIPClient();
  await whip.publish(pc, url, token);
  window.publisher = { pc, whip };
  return whip.resourceURL.pathname;
}"""

VIEW = """async ([url, token]) => {
  const pc = new RTCPeerConnection({ iceServers: [] });
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.ontrack = (event) => { document.getElementById("v").srcObject = new MediaStream([event.track]); };
  const whep = new WHEPClient();
  await whep.view(pc, url, token);
  window.viewer = { pc, whep };
  return whep.resourceURL.pathname;
}"""

# The mean colour of the top third of the frame: the camera's gradient there, never its moving disc.
TOP_COLOUR = """(id) => {
  const v = document.getElementById(id);
  const c = document.createElement("canvas"); c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext("2d"); g.drawImage(v, 0, 0);
  const d = g.getImageData(0, 0, c.width, Math.floor(c.height / 3)).data;
  const sum = [0, 0, 0];
  for (let i = 0; i < d.length; i += 4) { sum[0] += d[i]; sum[1] += d[i + 1]; sum[2] += d[i + 2]; }
  return sum.map((s) => s / (d.length / 4));
}"""


@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(settings.model_copy(update={"api_token": TOKEN})) as live:
        yield live


def serve(body: str, content_type: str) -> Callable[[Any], None]:
    return lambda route: route.fulfill(body=body, content_type=content_type)


def clients_page(browser: object, url: str) -> object:
    """A page on the server's origin with whip-whep's WHIPClient and WHEPClient loaded (from the vendor folder)."""
    page = browser.new_page()  # type: ignore[attr-defined]
    page.route(url + BLANK, serve(PAGE, "text/html"))
    for name in ("whip.js", "whep.js"):
        page.route(
            f"{url}/whip-whep/{name}", serve((web_runtime.WHIP_CLIENTS_DIR / name).read_text(), "text/javascript")
        )
    page.goto(url + BLANK)
    page.wait_for_function("window.clientsLoaded === true")
    return page


def camera_top_colour() -> np.ndarray:
    """What TOP_COLOUR reads from the fake camera itself (write_y4m's gradient), in RGB."""
    height, width = 480, 640
    y, x = np.mgrid[0 : height // 3, 0:width].astype(np.float32)
    base = np.stack([x / width, y / height, 0.25 + 0.5 * (x + y) / (width + height)], axis=-1)
    return (base * 255).astype(np.uint8).reshape(-1, 3).mean(axis=0)


def wait_painted(page: object, video: str, expected: np.ndarray, seconds: float = 20) -> np.ndarray:
    """The top colour of ``video`` once it is within 20 levels of ``expected`` (VP8 and H.264 move colours)."""
    page.wait_for_function(f"document.getElementById('{video}').videoWidth > 0", timeout=20_000)  # type: ignore
    deadline = time.monotonic() + seconds
    while True:
        shown = np.asarray(page.evaluate(TOP_COLOUR, video), dtype=np.float32)  # type: ignore[attr-defined]
        if np.abs(shown - expected).max() < 20 or time.monotonic() > deadline:
            return shown
        time.sleep(0.3)


@pytest.mark.parametrize("codec", ["video/H264", "video/VP8"])
def test_whip_whep_clients_from_npm_publish_and_play_back_painted(
    browser: object, server: LiveServer, codec: str
) -> None:
    camera = camera_top_colour()
    scream = camera[[2, 0, 1]]  # the tiny model's the_scream: a channel rotation
    assert np.abs(scream - camera).max() > 40  # far enough apart to tell

    publisher = clients_page(browser, server.url)
    location = publisher.evaluate(PUBLISH, [f"{server.url}/api/whip?weights=the_scream=1", TOKEN, codec])
    session = location.rsplit("/", 1)[-1]
    assert location == f"/api/whip/{session}"

    viewer = clients_page(browser, server.url)
    viewer.evaluate(VIEW, [f"{server.url}/api/whep/{session}", TOKEN])
    shown = wait_painted(viewer, "v", scream)
    assert np.abs(shown - scream).max() < 20, f"the viewer shows {shown}, painted is {scream}, camera {camera}"

    view = browser.new_page()  # type: ignore[attr-defined]
    view.goto(f"{server.url}/view.html?session={session}&token={TOKEN}")
    shown = wait_painted(view, "view", scream)
    assert np.abs(shown - scream).max() < 20, f"view.html shows {shown}, painted is {scream}"
    assert "token" not in view.url  # dropped from the address bar, kept for the tab
    frames = view.evaluate("window.livestyleView.frames")
    time.sleep(1.0)
    assert view.evaluate("window.livestyleView.frames") > frames + 5  # it plays, not a still

    publisher.evaluate("window.publisher.whip.stop()")  # WHIP DELETE: the session and its viewers end
    view.wait_for_function("window.livestyleView.state !== 'playing'", timeout=15_000)
    viewer.wait_for_function(
        "['failed', 'closed', 'disconnected'].includes(window.viewer.pc.connectionState)", timeout=15_000
    )


def test_the_pages_share_link_opens_the_view_and_the_view_follows_new_publishers(
    browser: object, server: LiveServer
) -> None:
    camera = camera_top_colour()
    page = browser.new_page()  # type: ignore[attr-defined]
    start_streaming(page, f"{server.url}/?token={TOKEN}")
    page.wait_for_selector("#share:not([hidden])", timeout=10_000)
    href = page.get_attribute("#share", "href")
    assert href is not None and href.startswith("view.html?session=") and f"token={TOKEN}" in href
    shared = browser.new_page()  # type: ignore[attr-defined]
    shared.goto(f"{server.url}/{href}")
    shown = wait_painted(shared, "view", np.asarray(page.evaluate(TOP_COLOUR, "stylized"), dtype=np.float32))
    assert np.abs(shown - camera).max() > 40, "the shared view shows the camera, not the painting"
    page.click("#stop")
    assert page.is_hidden("#share")

    follower = browser.new_page()  # type: ignore[attr-defined]
    follower.goto(f"{server.url}/view.html?token={TOKEN}")  # no session: the newest WHIP stream, when one comes
    follower.wait_for_function("document.getElementById('note').textContent.includes('waiting')", timeout=10_000)
    publisher = clients_page(browser, server.url)
    publisher.evaluate(PUBLISH, [f"{server.url}/api/whip?weights=the_scream=1", TOKEN, "video/VP8"])
    shown = wait_painted(follower, "view", camera[[2, 0, 1]])
    assert np.abs(shown - camera[[2, 0, 1]]).max() < 20, f"the follower shows {shown}"
