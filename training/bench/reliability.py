"""Table 10: holding up on a public host, measured against a real ``livestyle-serve`` process on loopback.

- **Load**: ``max_peers`` peers stream 640x480 frames at 15 fps; two more offers are refused; then one peer
  switches to the quality model and the others' frame rate is compared with before.
- **Slot attack**: offers with a real SDP that never connect, one from each of ``max_peers`` loopback
  addresses (127.0.0.2, ...), fill every slot; a real user retrying every half second is timed until admitted.
- **Memory**: the server's resident memory before, right after, and 10 s after the largest accepted images.
- **Soak**: one peer streams for ``soak_minutes``; the server's memory is sampled every 10 s.

Everything runs in one process per server (the server under test is a subprocess, so the clients here do
not share its interpreter).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import httpx
import numpy as np
from aiortc import RTCPeerConnection, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame
from PIL import Image

from examples.client import ClientError, StyleClient
from service.live.signalling import loopback_host_addresses
from training.bench.report import Table

log = logging.getLogger(__name__)
FPS = 15
FAIR_GOAL, KEPT_OUT_GOAL, MEMORY_GOAL, SOAK_GOAL, HEALTH_GOAL = 0.7, 12.0, 0.15, 0.10, 100.0


@dataclass(frozen=True)
class ReliabilityPlan:
    models_dir: Path
    slow_model: str = "quality"  # the model one peer switches to
    max_peers: int = 4
    seconds: float = 10.0  # each load phase
    soak_minutes: float = 10.0


@dataclass
class ReliabilityResult:
    fps_before: list[float] = field(default_factory=list)  # per realtime peer
    fps_after: list[float] = field(default_factory=list)  # the same peers while one runs the quality model
    quality_fps: float = 0.0
    refused: list[int] = field(default_factory=list)  # statuses of the offers past max_peers
    kept_out_s: float = float("nan")
    memory_mb: tuple[float, float, float] = (float("nan"),) * 3  # baseline, right after, 10 s after
    health_ms: float = float("nan")  # slowest /api/health answer while the big images and a large SDP went in
    soak_mb: list[float] = field(default_factory=list)
    soak_fps: float = 0.0


class Camera(VideoStreamTrack):
    """A moving gradient (640x480 unless told) at 15 fps."""

    def __init__(self, width: int = 640, height: int = 480) -> None:
        super().__init__()
        y, x = np.mgrid[0:height, 0:width]
        self.base = np.stack(
            [x * 255 // (width - 1), y * 255 // (height - 1), (x + y) * 255 // (width + height - 2)], -1
        ).astype(np.uint8)
        self.count = 0

    async def recv(self) -> VideoFrame:
        await asyncio.sleep(1 / FPS)
        frame = VideoFrame.from_ndarray(np.roll(self.base, self.count * 4, axis=1), format="rgb24")
        frame.pts, frame.time_base = self.count * 6000, Fraction(1, 90000)
        self.count += 1
        return frame


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(
    models_dir: Path, max_peers: int = 4, **settings: str | None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``livestyle-serve`` on a free loopback port with loopback-only ICE; yields its URL and process.
    ``settings``: environment variables for it; None removes one this process has."""
    port = free_port()
    given = {
        "LIVESTYLE_MAX_PEERS": str(max_peers),
        "LIVESTYLE_MODELS_DIR": str(models_dir),
        "LIVESTYLE_ICE_LOOPBACK": "true",
        "LIVESTYLE_DREAM": "false",
    } | settings
    env = {k: v for k, v in (os.environ | given).items() if v is not None}
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            if process.poll() is not None:
                raise RuntimeError(f"livestyle-serve exited: {process.stderr.read().decode()[-500:]}")  # type: ignore[union-attr]
            time.sleep(0.2)
        yield url, process
    finally:
        process.terminate()
        process.wait(20)


def resident_mb(process: subprocess.Popen[bytes]) -> float:
    return int(Path(f"/proc/{process.pid}/statm").read_text().split()[1]) * 4096 / 2**20


class Counter:
    """Counts the frames a peer receives."""

    def __init__(self) -> None:
        self.frames = 0
        self.task: asyncio.Task[None] | None = None

    def start(self, track: object) -> None:
        async def drain() -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    await track.recv()  # type: ignore[attr-defined]
                    self.frames += 1

        self.task = asyncio.ensure_future(drain())


async def rates(counters: list[Counter], seconds: float) -> list[float]:
    start = [c.frames for c in counters]
    await asyncio.sleep(seconds)
    return [(c.frames - s) / seconds for c, s in zip(counters, start, strict=True)]


async def load(url: str, plan: ReliabilityPlan, result: ReliabilityResult) -> None:
    clients, counters = [], []
    try:
        for _ in range(plan.max_peers):
            client = StyleClient(url)
            counter = Counter()
            counter.start(await client.connect(Camera()))
            clients.append(client)
            counters.append(counter)
            deadline = time.monotonic() + 10
            while counter.frames == 0 and time.monotonic() < deadline:  # streaming before the next one comes
                await asyncio.sleep(0.1)
        for _ in range(2):
            extra = StyleClient(url)
            try:
                await extra.connect(Camera())
                result.refused.append(200)
            except ClientError as exc:
                result.refused.append(int(str(exc).split("(")[1].split(")")[0]))
            finally:
                await extra.close()
        await asyncio.sleep(3)  # settle: adaptive resolution, encoders
        result.fps_before = (await rates(counters, plan.seconds))[1:]
        reply = await clients[0].send({"model": plan.slow_model})
        if "error" in reply:
            raise RuntimeError(f"switching to the quality model: {reply['error']}")
        await asyncio.sleep(3)
        after = await rates(counters, plan.seconds)
        result.quality_fps, result.fps_after = after[0], after[1:]
    finally:
        await asyncio.gather(*(c.close() for c in clients))


def never_connecting_offer(source: str, url: str, sdp: str) -> int:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=10) as http:
        return http.post(f"{url}/api/offer", json={"sdp": sdp, "type": "offer"}).status_code


async def offer_sdp() -> str:
    pc = RTCPeerConnection()
    pc.addTrack(VideoStreamTrack())
    pc.createDataChannel("control")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = str(pc.localDescription.sdp)
    await pc.close()
    return sdp


async def slot_attack(url: str, plan: ReliabilityPlan, result: ReliabilityResult) -> None:
    sdp = await offer_sdp()
    held = [never_connecting_offer(f"127.0.0.{2 + i}", url, sdp) for i in range(plan.max_peers)]
    if held.count(200) != plan.max_peers:
        raise RuntimeError(f"the attack's offers were answered {held}")
    started = time.monotonic()
    while time.monotonic() - started < 60:
        user = StyleClient(url)
        try:
            await user.connect(Camera())
            result.kept_out_s = time.monotonic() - started
            return
        except ClientError:
            await asyncio.sleep(0.5)
        finally:
            await user.close()


@contextlib.contextmanager
def health_watch(url: str, result: ReliabilityResult) -> Iterator[None]:
    """Poll /api/health every 50 ms meanwhile; the slowest answer goes to ``result.health_ms``."""
    stop = threading.Event()
    slowest = [0.0]

    def poll() -> None:
        with httpx.Client(timeout=10) as http:
            while not stop.is_set():
                started = time.perf_counter()
                http.get(f"{url}/api/health")
                slowest[0] = max(slowest[0], 1000 * (time.perf_counter() - started))
                stop.wait(0.05)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        result.health_ms = slowest[0]


def big_images(url: str, process: subprocess.Popen[bytes], plan: ReliabilityPlan, result: ReliabilityResult) -> None:
    with health_watch(url, result):
        _big_images(url, process, plan, result)
        sdp = "v=0\r\n" + "a=x-filler:" + "x" * 60_000 + "\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
        httpx.post(f"{url}/api/offer", json={"sdp": sdp, "type": "offer"}, timeout=30)  # refused, not stalling


def _big_images(url: str, process: subprocess.Popen[bytes], plan: ReliabilityPlan, result: ReliabilityResult) -> None:
    rng = np.random.default_rng(0)
    baseline = resident_mb(process)
    for side in (1280, 1600, 2000):  # each resized to max_image_side (1280) before the network
        picture = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (side * 3 // 4, side, 3), dtype=np.uint8)).save(picture, "PNG")
        for model in (None, plan.slow_model):
            response = httpx.post(
                f"{url}/api/stylize",
                files={"image": ("big.png", picture.getvalue())},
                data={"model": model} if model else {},
                timeout=120,
            )
            response.raise_for_status()
    right_after = resident_mb(process)
    time.sleep(10)
    result.memory_mb = (baseline, right_after, resident_mb(process))
    big = io.BytesIO()
    Image.new("L", (13000, 13000)).save(big, "PNG")  # half a megabyte, refused from its header
    httpx.post(f"{url}/api/stylize", files={"image": ("bomb.png", big.getvalue())}, timeout=30)


async def soak(url: str, process: subprocess.Popen[bytes], plan: ReliabilityPlan, result: ReliabilityResult) -> None:
    client = StyleClient(url)
    counter = Counter()
    try:
        counter.start(await client.connect(Camera()))
        started = time.monotonic()
        while time.monotonic() - started < 60 * plan.soak_minutes:
            await asyncio.sleep(10)
            result.soak_mb.append(resident_mb(process))
        result.soak_fps = counter.frames / (time.monotonic() - started)
    finally:
        await client.close()


def measure_reliability(plan: ReliabilityPlan) -> ReliabilityResult:
    result = ReliabilityResult()
    with loopback_host_addresses():
        with server(plan.models_dir, plan.max_peers) as (url, _):
            asyncio.run(load(url, plan, result))
            log.info("reliability: load done")
        with server(plan.models_dir, plan.max_peers) as (url, _):
            asyncio.run(slot_attack(url, plan, result))
            log.info("reliability: slot attack done")
        with server(plan.models_dir, plan.max_peers) as (url, process):
            asyncio.run(soak(url, process, ReliabilityPlan(plan.models_dir, soak_minutes=0.2), result))
            result.soak_mb.clear()  # warm-up stream: the soak measures from a server that has streamed once
            big_images(url, process, plan, result)
            log.info("reliability: memory done; soaking %.0f minutes", plan.soak_minutes)
            asyncio.run(soak(url, process, plan, result))
    return result


def _reliability_rows(plan: ReliabilityPlan, r: ReliabilityResult) -> list[list[str]]:
    """What each load did: frame rates, refusals, memory, the soak."""
    fair = statistics.fmean(r.fps_after) / statistics.fmean(r.fps_before) if r.fps_before else float("nan")
    base, peak, later = r.memory_mb
    kept = later / base - 1
    soak_growth = (r.soak_mb[-1] / r.soak_mb[0] - 1) if len(r.soak_mb) > 1 else float("nan")
    rows = [
        [
            "load: frame rate per realtime peer",
            f"{plan.max_peers} peers at {FPS} fps in",
            f"{statistics.fmean(r.fps_before):.1f} fps" if r.fps_before else "-",
        ],
        ["offers past the limit", f"{len(r.refused)} more offers", ", ".join(map(str, r.refused))],
        [
            "one peer switches to the quality model",
            "the other peers' frame rate",
            f"{statistics.fmean(r.fps_after):.1f} fps ({fair:.2f}x before; the quality peer {r.quality_fps:.1f} fps)"
            if r.fps_after
            else "-",
        ],
        [
            "slot attack",
            f"{plan.max_peers} never-connecting offers from {plan.max_peers} addresses",
            f"a real user admitted after {r.kept_out_s:.1f} s",
        ],
        [
            "memory after big images",
            "3 sizes x 2 models on /api/stylize",
            f"{base:.0f} MB before, {peak:.0f} MB right after, {later:.0f} MB 10 s later ({kept:+.0%})",
        ],
        ["/api/health meanwhile", "big images, a 13000x13000 PNG, a 60 KB SDP", f"slowest answer {r.health_ms:.0f} ms"],
        [
            "soak",
            f"1 peer, {plan.soak_minutes:g} min",
            f"{r.soak_mb[0]:.0f} -> {r.soak_mb[-1]:.0f} MB ({soak_growth:+.1%}), max {max(r.soak_mb):.0f} MB, "
            f"{r.soak_fps:.1f} fps"
            if r.soak_mb
            else "-",
        ],
    ]
    return rows


def reliability_table(plan: ReliabilityPlan, r: ReliabilityResult, models: dict[str, str]) -> Table:
    rows = _reliability_rows(plan, r)
    fair = statistics.fmean(r.fps_after) / statistics.fmean(r.fps_before) if r.fps_before else float("nan")
    base, peak, later = r.memory_mb
    kept = later / base - 1
    soak_growth = (r.soak_mb[-1] / r.soak_mb[0] - 1) if len(r.soak_mb) > 1 else float("nan")
    verdicts = [
        f"Fairness: {'met' if fair >= FAIR_GOAL else 'missed'} ({fair:.2f}x, goal >= {FAIR_GOAL}x).",
        f"Slot attack: {'met' if r.kept_out_s <= KEPT_OUT_GOAL else 'missed'} "
        f"({r.kept_out_s:.1f} s, goal <= {KEPT_OUT_GOAL:g} s).",
        f"Memory: {'met' if kept <= MEMORY_GOAL else 'missed'} ({kept:+.0%} 10 s after, goal within "
        f"{MEMORY_GOAL:.0%}).",
        f"Soak: {'met' if abs(soak_growth) <= SOAK_GOAL else 'missed'} ({soak_growth:+.1%}, goal flat within "
        f"{SOAK_GOAL:.0%}).",
        f"Event loop: {'met' if r.health_ms <= HEALTH_GOAL else 'missed'} (/api/health at worst "
        f"{r.health_ms:.0f} ms, goal <= {HEALTH_GOAL:g} ms).",
        f"Offers past the limit: {'met' if r.refused and all(s == 503 for s in r.refused) else 'missed'} (503).",
    ]
    shas = ", ".join(f"{name} {sha[:12]}" for name, sha in models.items())
    return Table(
        title="10. Reliability on a public host",
        header=["what", "load", "result"],
        rows=rows,
        setup=(
            f"A `livestyle-serve` subprocess on loopback (max_peers {plan.max_peers}, ONNX Runtime 1 thread, "
            f"frames of the quality tier on their own thread), models {shas}; "
            f"clients are aiortc peers sending a moving 640x480 gradient at {FPS} fps; frame rates are frames "
            f"received per second over {plan.seconds:g} s. `python -m training.bench --only reliability`."
        ),
        goal=(
            f"another peer's frame rate >= {FAIR_GOAL}x when one switches to the quality model; a real user kept "
            f"out <= {KEPT_OUT_GOAL:g} s by never-connecting offers; memory within {MEMORY_GOAL:.0%} of its "
            f"baseline 10 s after big images; a soak flat within {SOAK_GOAL:.0%}; /api/health answering within "
            f"{HEALTH_GOAL:g} ms whatever comes in."
        ),
        verdicts=verdicts,
    )
