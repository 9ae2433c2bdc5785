"""Table 16: broadcast, WHIP in and WHEP out, in headless Chromium on this machine.

One page publishes a 640x480 canvas camera with a frame counter drawn into it by WHIP (``POST /api/whip``, the
realtime model) and plays the painted session back by WHEP to 1, 2 and 4 viewers (video elements in the same page,
so the counter's send time and its read-back share one clock), and before them 1 and 4 aiortc viewers in this
process (decoding only: what the server gives viewers that do not share the publisher's browser). Per row:
frames shown per second at each viewer, publish-to-play latency (the counter read from each decoded frame), the
server's paintings per second against the frames it received, and the server's CPU (this process). The page's
own round trip (table 4's path, ``/?paint=server``) is measured in the same run as the baseline.

    unshare -n sh -c 'ip link set lo up && exec "$@"' sh .venv/bin/python -m training.bench.broadcast [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import logging
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from service.settings import Settings
from training.bench.browser import CAMERA, CHROMIUM, FLAGS, READ_SCREEN, _one_model, _Server, unavailable_reason
from training.bench.machine import Machine
from training.bench.report import Table, fmt

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
VIEWERS = (1, 2, 4)
BLANK = "/bench-broadcast.html"  # an empty page on the server's origin, served by the benchmark (page.route)
GOAL_EXTRA_MS, GOAL_FPS_RATIO = 50.0, 0.8
SDP_TYPE = "application/sdp"

# WHIP publish and WHEP watch with nothing but fetch: the offer waits for every candidate (the server takes
# none trickled); each viewer is a <video id="vK"> whose frames are counted and whose counter is read.
CLIENT = """() => {
  window.__frames = {};
  const gathered = (pc) => new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') resolve(); };
    setTimeout(resolve, 5000);
  });
  const exchange = async (pc, url) => {
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const r = await fetch(url, {method: 'POST', headers: {'Content-Type': 'application/sdp'},
                                body: pc.localDescription.sdp});
    if (r.status !== 201) throw new Error(`${url}: ${r.status} ${await r.text()}`);
    await pc.setRemoteDescription({type: 'answer', sdp: await r.text()});
    return r.headers.get('Location');
  };
  window.publish = async (query) => {
    const stream = await navigator.mediaDevices.getUserMedia({video: true});
    const pc = new RTCPeerConnection({iceServers: []});
    pc.addTransceiver(stream.getVideoTracks()[0], {direction: 'sendonly'});
    return await exchange(pc, '/api/whip' + query);
  };
  window.watch = async (session, id) => {
    const pc = new RTCPeerConnection({iceServers: []});
    pc.addTransceiver('video', {direction: 'recvonly'});
    const video = Object.assign(document.createElement('video'), {id, muted: true, autoplay: true, playsInline: true});
    document.body.appendChild(video);
    pc.ontrack = (event) => { video.srcObject = new MediaStream([event.track]); };
    await exchange(pc, `/api/whep/${session}`);
    window.__frames[id] = 0;
    const count = () => { window.__frames[id] += 1; video.requestVideoFrameCallback(count); };
    video.requestVideoFrameCallback(count);
  };
}"""


def encode_ms(runs: int = 90) -> dict[str, float]:
    """Median ms of one 640x480 encode by aiortc's VP8 and H.264 encoders (what each viewer adds), on a moving
    frame, alone in this process: the cost of a viewer apart from whatever else shares the machine."""
    from aiortc.codecs.h264 import H264Encoder
    from aiortc.codecs.vpx import Vp8Encoder
    from av import VideoFrame

    y, x = np.mgrid[0:480, 0:640]
    medians = {}
    for name, encoder in (("VP8", Vp8Encoder()), ("H.264", H264Encoder())):
        times = []
        for i in range(runs):
            rgb = np.stack([(x + 4 * i) % 256, (y + 2 * i) % 256, (x + y) % 256], axis=-1).astype(np.uint8)
            frame = VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = i * 3000, fractions.Fraction(1, 90000)
            started = time.perf_counter()
            encoder.encode(frame)
            times.append((time.perf_counter() - started) * 1000.0)
        medians[name] = statistics.median(times[10:])
    return medians


@dataclass(frozen=True)
class Row:
    viewers: int
    fps: list[float]  # frames shown per second at each viewer
    sent: list[float]  # frames per second the server sent each viewer
    latency: list[float]  # ms, every counter read at every viewer
    painted_per_s: float
    encoded_per_s: float  # the session's shared encodes, all codecs
    received_per_s: float
    server_cpu: float  # % of one core (nan: viewers decoding in the server's process)
    player: str = "chromium"  # the viewers: <video> elements in the publisher's page, or aiortc in this process


def _session(url: str) -> dict[str, Any]:
    (session,) = httpx.get(f"{url}/api/sessions").json()
    return dict(session)


def _sent(before: dict[str, Any], after: dict[str, Any], wall: float) -> list[float]:
    """Frames per second the server sent each viewer present in both snapshots of the session."""
    was = {v["id"]: v["frames_sent"] for v in before["viewers"]}
    return [(v["frames_sent"] - was[v["id"]]) / wall for v in after["viewers"] if v["id"] in was]


async def _aiortc_viewers(url: str, session: str, count: int, seconds: float) -> Row:
    """``count`` WHEP viewers on aiortc (receive, decode, count frames), none of them rendering: what the server
    gives each viewer when the viewers do not share the publisher's browser."""
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError

    pcs, counts, tasks = [RTCPeerConnection() for _ in range(count)], [0] * count, []
    locations: list[str] = []

    async def count_frames(index: int, track: Any) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                counts[index] += 1

    async with httpx.AsyncClient(timeout=30) as http:
        for index, pc in enumerate(pcs):
            pc.addTransceiver("video", direction="recvonly")
            pc.on("track", lambda track, i=index: tasks.append(asyncio.ensure_future(count_frames(i, track))))
            await pc.setLocalDescription(await pc.createOffer())
            answer = await http.post(
                f"{url}/api/whep/{session}", content=pc.localDescription.sdp, headers={"Content-Type": SDP_TYPE}
            )
            if answer.status_code != 201:
                raise RuntimeError(f"WHEP viewer {index}: {answer.status_code} {answer.text}")
            locations.append(answer.headers["location"])
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer.text, type="answer"))
            for _ in range(200):  # connected and playing before the next (the server limits offers still connecting)
                if counts[index]:
                    break
                await asyncio.sleep(0.1)
        await asyncio.sleep(3.0)  # settle: connected, decoders warm
        frames0, before, wall0 = list(counts), (await http.get(f"{url}/api/sessions")).json()[0], time.monotonic()
        await asyncio.sleep(seconds)
        wall, after = time.monotonic() - wall0, (await http.get(f"{url}/api/sessions")).json()[0]
        frames = list(counts)
        for location in locations:  # leave as a WHEP client does: the slots are free at once
            await http.delete(url + location)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*(pc.close() for pc in pcs))
    return Row(
        count,
        [(b - a) / wall for a, b in zip(frames0, frames, strict=True)],
        _sent(before, after, wall),
        [],
        (after["frames_painted"] - before["frames_painted"]) / wall,
        (sum(after["frames_encoded"].values()) - sum(before["frames_encoded"].values())) / wall,
        (after["frames_in"] - before["frames_in"]) / wall,
        float("nan"),
        "aiortc",
    )


def _aiortc_rows(url: str, session: str, seconds: float) -> list[Row]:
    """One and four aiortc viewers, each row on its own event loop in a thread (the page's Playwright owns this
    thread's)."""
    rows: list[Row] = []
    for count in (1, max(VIEWERS)):
        worker = threading.Thread(
            target=lambda c=count: rows.append(asyncio.run(_aiortc_viewers(url, session, c, seconds)))
        )
        worker.start()
        worker.join()
        time.sleep(1.0)  # the viewers' slots and the feed are given back
    return rows


def measure(browser: Any, url: str, seconds: float) -> list[Row]:
    page = browser.new_page()
    page.route(url + BLANK, lambda route: route.fulfill(body="<!doctype html><body></body>", content_type="text/html"))
    page.add_init_script(f"({CAMERA})([640, 480])")
    rows = []
    try:
        page.goto(url + BLANK)
        page.evaluate(CLIENT)
        session = page.evaluate("window.publish('')").rsplit("/", 1)[-1]
        time.sleep(2.0)  # the publisher's first frames reach the server
        rows += _aiortc_rows(url, session, seconds)
        for count in VIEWERS:
            for k in range(len(page.evaluate("Object.keys(window.__frames)")), count):
                page.evaluate(f"window.watch('{session}', 'v{k}')")
                page.wait_for_function(f"document.getElementById('v{k}').videoWidth === 640", timeout=30_000)
                page.evaluate(f"({READ_SCREEN})([640, false, 'v{k}'])")
            time.sleep(3.0)  # settle: every viewer's encoder and decoder warm
            page.evaluate("for (const k in window.__lat) window.__lat[k].length = 0")
            frames0, before = page.evaluate("({...window.__frames})"), _session(url)
            cpu0, wall0 = time.process_time(), time.monotonic()  # the server runs in this process
            time.sleep(seconds)
            wall = time.monotonic() - wall0
            cpu, frames, after = time.process_time() - cpu0, page.evaluate("({...window.__frames})"), _session(url)
            latency = [float(x) for values in page.evaluate("Object.values(window.__lat)") for x in values]
            rows.append(
                Row(
                    count,
                    [(frames[k] - frames0[k]) / wall for k in frames],
                    _sent(before, after, wall),
                    latency,
                    (after["frames_painted"] - before["frames_painted"]) / wall,
                    (sum(after["frames_encoded"].values()) - sum(before["frames_encoded"].values())) / wall,
                    (after["frames_in"] - before["frames_in"]) / wall,
                    100.0 * cpu / wall,
                )
            )
            log.info("broadcast: %d viewers measured", count)
    finally:
        page.close()
    return rows


def broadcast_table(
    rows: list[Row], baseline: float | None, seconds: float, encodes: dict[str, float], skipped: str = ""
) -> Table:
    table = Table(
        title="16. Broadcast: WHIP in, WHEP out (headless Chromium, 640x480, realtime model)",
        header=[
            "viewers",
            "frames shown/s per viewer (min / median)",
            "frames sent/s per viewer (min)",
            "publish to play median / p90 ms",
            "counters read",
            "painted / encoded / received per s",
            "server CPU % of one core",
        ],
        setup=(
            f"One Chromium page publishes a 30 fps canvas camera by WHIP and plays the session back by WHEP to "
            f"each viewer in the same page; {seconds:.0f} s per row after 3 s settling, viewers added to the "
            "same session. First, rows '(aiortc)': 1 and 4 WHEP viewers on aiortc in the server's process "
            "(receiving and decoding, not rendering), frames counted as decoded. Latency: the frame counter "
            "drawn into the camera, read from each decoded frame. "
            "Server CPU: the server process over the wall time (Chromium's decoding and encoding not "
            "included). Baseline: the page's own round trip (table 4's path) measured in the same run, "
            f"{fmt(baseline)} ms median. Browser, server and anything else running share the machine. "
            "`python -m training.bench.broadcast`."
        ),
        goal=(
            f"publish-to-play median <= the page's own round trip + {GOAL_EXTRA_MS:.0f} ms; with 4 viewers the "
            f"server paints once (paintings per second = frames received) and each viewer keeps >= "
            f"{GOAL_FPS_RATIO}x the one-viewer frame rate."
        ),
        skipped=skipped,
    )
    for r in rows:
        lat = f"{np.median(r.latency):.0f} / {np.percentile(r.latency, 90):.0f}" if len(r.latency) >= 10 else "n/a"
        table.rows.append(
            [
                f"{r.viewers}" + (" (aiortc)" if r.player == "aiortc" else ""),
                f"{min(r.fps):.1f} / {statistics.median(r.fps):.1f}",
                f"{min(r.sent):.1f}" if r.sent else "n/a",
                lat,
                str(len(r.latency)),
                f"{r.painted_per_s:.1f} / {r.encoded_per_s:.1f} / {r.received_per_s:.1f}",
                f"{r.server_cpu:.0f}" if r.server_cpu == r.server_cpu else "n/a (viewers in its process)",
            ]
        )
    table.verdicts = verdicts(rows, baseline)
    if encodes:
        table.notes.append(
            "The viewers of one codec share one encode of each painted frame (service/live/feeds.py), paid "
            "once per session and codec, not per viewer: "
            + ", ".join(f"{k} {v:.1f} ms" for k, v in encodes.items())
            + " per 640x480 frame on this machine (median of 80, alone in the process), i.e. "
            + ", ".join(f"{k} {v * 30 / 10:.0f}%" for k, v in encodes.items())
            + " of a core at 30 frames/s; an extra viewer adds only its packets (packetizing, encrypting, "
            "sending)."
        )
    return table


def verdicts(rows: list[Row], baseline: float | None) -> list[str]:
    by = {r.viewers: r for r in rows if r.player == "chromium"}
    said = []
    one, four = by.get(1), by.get(max(VIEWERS))
    if one is not None and baseline is not None and len(one.latency) >= 10:
        median = float(np.median(one.latency))
        met = "met" if median <= baseline + GOAL_EXTRA_MS else "missed"
        said.append(
            f"Latency: {median:.0f} ms publish to play against {baseline:.0f} ms for the page's own round "
            f"trip ({median - baseline:+.0f} ms; goal +{GOAL_EXTRA_MS:.0f} ms): {met}."
        )
    if one is not None and four is not None:
        ratio = min(four.fps) / statistics.median(one.fps)
        met = "met" if ratio >= GOAL_FPS_RATIO else "missed"
        said.append(
            f"Four viewers: the slowest shows {min(four.fps):.1f} frames/s, {ratio:.2f}x one viewer's "
            f"(goal {GOAL_FPS_RATIO}x): {met}. The server painted {four.painted_per_s:.1f} frames/s of the "
            f"{four.received_per_s:.1f} it received: one painting per session (the newest frame wins), "
            f"never one per viewer, and encoded {four.encoded_per_s:.1f} frames/s for all {four.viewers} "
            "viewers (one encode per painted frame)."
        )
        if four.sent and one.sent:
            said.append(
                f"The server sent each of the {four.viewers} viewers at least {min(four.sent):.1f} frames/s "
                f"({min(four.sent) / min(one.sent):.2f}x what it sent one); what the page showed below that was "
                "lost in Chromium (its decoders, renderer and the camera's encoder on the same two cores)."
            )
        extra = (four.server_cpu - one.server_cpu) / (four.viewers - one.viewers)
        said.append(f"Server CPU per extra viewer: {extra:+.1f}% of one core (1 -> {four.viewers} viewers).")
    return said + _aiortc_verdict(rows)


def _aiortc_verdict(rows: list[Row]) -> list[str]:
    by = {r.viewers: r for r in rows if r.player == "aiortc"}
    one, four = by.get(1), by.get(max(VIEWERS))
    if one is None or four is None or not one.fps or not four.fps:
        return []
    ratio = min(four.fps) / statistics.median(one.fps)
    return [
        f"Four viewers outside the publisher's browser (aiortc in the server's process: receiving and decoding, "
        f"not rendering): the slowest decodes {min(four.fps):.1f} frames/s, {ratio:.2f}x one viewer's "
        f"(goal {GOAL_FPS_RATIO}x): {'met' if ratio >= GOAL_FPS_RATIO else 'missed'}."
    ]


def run(models_dir: Path, seconds: float) -> Table:
    encodes = encode_ms()
    reason = unavailable_reason()
    if reason:
        return broadcast_table([], None, seconds, encodes, skipped=reason)
    from playwright.sync_api import sync_playwright

    settings = Settings.model_validate(
        {"models_dir": models_dir, "dream": False, "ice_loopback": True, "max_viewers": max(VIEWERS)}
    )
    with _Server(settings) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            realtime = next(
                m for m in httpx.get(f"{server.url}/api/styles").json()["models"] if m["tier"] == "realtime"
            )["name"]
            baseline = _one_model(browser, server.url, realtime, seconds).latency_median
            rows = measure(browser, server.url, seconds)
        finally:
            browser.close()
    return broadcast_table(rows, baseline, seconds, encodes)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.bench.broadcast",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per row")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    table = run(args.models_dir, args.seconds)
    command = "python -m training.bench.broadcast" + (f" --seconds {args.seconds:g}" if args.seconds != 10 else "")
    print(table.markdown(Machine.describe(REPO, args.models_dir).line(command)))


if __name__ == "__main__":
    main()
