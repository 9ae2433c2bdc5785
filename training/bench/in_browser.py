"""Table 14: painting in the viewer's browser against painting on the server, in one run on one machine.

The same canvas camera (a frame counter drawn into it as blocks) feeds the page in headless Chromium, once with
``?paint=browser`` (the realtime model in onnxruntime-web, WASM) and once with ``?paint=server`` (WebRTC to the
server and back), at 320x240, 480x360 and 640x480, each size held fixed (adaptive resolution off on both sides).
Camera-to-screen latency is the counter read back from what is on screen (the painted canvas, or the decoded
video), not the page's estimate. Chromium's CPU time (all its processes) and the server's (this process) are
divided by the frames shown. A second viewer: two pages at 640x480 at once, each path.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service import contract
from service.settings import Settings
from training.bench.browser import CAMERA, CHROMIUM, FLAGS, READ_SCREEN, _Server
from training.bench.report import Table, fmt

log = logging.getLogger(__name__)
SIZES = ((320, 240), (480, 360), (640, 480))
GOAL_FPS_MID, GOAL_FPS_FULL, GOAL_LATENCY = 25.0, 15.0, 0.5


@dataclass(frozen=True)
class PathResult:
    path: str  # browser | server
    size: tuple[int, int]
    viewers: int
    fps: float  # frames shown per second, per viewer (median over the viewers)
    latency: list[float]
    browser_cpu_ms: float  # Chromium's CPU time per frame shown
    server_cpu_ms: float  # the server's CPU time per frame shown
    detail: str  # backend and threads, or the server's inference
    adaptive: bool = False  # the defaults: the resolution governor on (both paths)
    side: int = 0  # the longer side painted (the browser's governor's, or the size held)
    run_ms: float = 0.0  # in the browser: session.run, median over the frames shown
    alone_ms: float = 0.0  # in the browser: time between frames painted with the camera loop stopped
    painters: int = 0  # in the browser: painters (workers) working at once
    forced: bool = False  # in the browser: the painter count forced (?painters=), not the page's choice


def chromium_cpu_seconds() -> float:
    """User + system CPU seconds of every Chromium process on this machine (the benchmark's only browser)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "comm").read_text().startswith("chrom"):
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / 100.0  # clock ticks


def _open(browser: Any, url: str, path: str, size: tuple[int, int], painters: int = 0) -> Any:
    page = browser.new_page()
    page.add_init_script(f"({CAMERA})({list(size)})")
    page.goto(f"{url}/?paint={path}" + (f"&painters={painters}" if painters else ""))
    page.wait_for_selector(".card input[type=range]")
    page.click("#start")
    page.wait_for_function(
        f"window.livestyle.status === 'live' && window.livestyle.paint.mode === '{path}'", timeout=60_000
    )
    ready = (
        "window.livestyle.paint.painter.stats().painted > 3"
        if path == "browser"
        else "document.getElementById('stylized').videoWidth > 0"
    )
    page.wait_for_function(ready, timeout=60_000)
    page.evaluate(READ_SCREEN, [size[0], path == "browser"])
    return page


def _shown(page: Any, path: str) -> int:
    return int(page.evaluate("window.livestyle.paint.painter.stats().painted")) if path == "browser" else 0


def _alone(page: Any, side: int, size: tuple[int, int]) -> float:
    """The same painter with the camera loop stopped: a frame painted with nothing else on the page (its run,
    pixels in and out and the worker hand-off), after the measured seconds."""
    page.evaluate("window.livestyle.paint.painter.stop()")
    time.sleep(0.5)
    return float(page.evaluate(f"window.livestyle.paint.painter.measure({side}, {size[0] / size[1]}, 8)"))


def _browser_detail(
    page: Any, size: tuple[int, int], around: list[float], alone: bool
) -> tuple[int, float, float, int, str]:
    """The in-browser row's side, run ms, a frame alone (``alone``: measured now), painters and its 'how'."""
    stats = page.evaluate("window.livestyle.paint.painter.stats()")
    side, run_ms, used = int(stats["side"]), float(stats["runMs"] or 0.0), int(stats["painters"])
    alone_ms = _alone(page, side, size) if alone else 0.0
    detail = (
        f"{stats['backend']}, {used} x {stats['threads']} threads, run {fmt(run_ms)} ms at {side} px"
        + (f", {statistics.median(around):.1f} ms around it" if around else "")
        + (f"; a frame alone {alone_ms:.1f} ms" if alone_ms else "")
    )
    return side, run_ms, alone_ms, used, detail


def measure_path(
    browser: Any,
    url: str,
    path: str,
    size: tuple[int, int],
    seconds: float,
    viewers: int = 1,
    adaptive: bool = False,
    painters: int = 0,
) -> PathResult:
    """One path's row; ``painters`` forces the in-browser painter count (0: the page's own choice)."""
    pages = [_open(browser, url, path, size, painters) for _ in range(viewers)]
    try:
        time.sleep(2.0)  # start-up
        for page in pages:
            page.evaluate("window.__latency.length = 0")
        painted = [_shown(p, path) for p in pages]
        cpu, server_cpu, wall = chromium_cpu_seconds(), time.process_time(), time.monotonic()
        samples: list[list[float]] = [[] for _ in pages]
        around: list[float] = []  # the in-browser frame's time outside session.run: read, pre, post, draw
        for _ in range(max(1, round(seconds))):
            time.sleep(1.0)
            for i, page in enumerate(pages):
                samples[i].append(float(page.evaluate("window.livestyle.fpsShown")))
            if path == "browser":
                parts = pages[0].evaluate("window.livestyle.paint.painter.parts") or {}
                around.append(sum(float(v) for k, v in parts.items() if k != "run"))
        elapsed = time.monotonic() - wall
        cpu, server_cpu = chromium_cpu_seconds() - cpu, time.process_time() - server_cpu
        side, run_ms, alone_ms, used = max(size), 0.0, 0.0, 0
        if path == "browser":
            frames = sum(_shown(p, path) - n for p, n in zip(pages, painted, strict=True))
            side, run_ms, alone_ms, used, detail = _browser_detail(pages[0], size, around, viewers == 1)
        else:
            frames = round(sum(statistics.fmean(s) for s in samples) * elapsed)
            stats = pages[0].evaluate("window.livestyle.serverStats") or {}
            detail = f"server infer {stats.get('infer_ms_p50', 'n/a')} ms at {stats.get('side', 'n/a')} px"
        latency = [float(x) for p in pages for x in p.evaluate("window.__latency")]
    finally:
        for page in pages:
            page.close()
    per = max(frames, 1)
    return PathResult(
        path,
        size,
        viewers,
        statistics.median(statistics.median(s) for s in samples),
        latency,
        1000.0 * cpu / per,
        1000.0 * server_cpu / per,
        detail,
        adaptive,
        side,
        run_ms,
        alone_ms,
        used,
        painters != 0,
    )


def measure_in_browser(models_dir: Path, seconds: float) -> list[PathResult]:
    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            for size in SIZES:
                side = max(size)
                settings = Settings.model_validate(
                    {
                        "models_dir": models_dir,
                        "dream": False,
                        "ice_loopback": True,
                        "max_frame_side": side,
                        "min_frame_side": side,
                        "adaptive_resolution": False,
                    }
                )
                with _Server(settings) as server:
                    for path in ("browser", "server"):
                        results.append(measure_path(browser, server.url, path, size, seconds))
                        log.info("in-browser: %s at %dx%d done", path, *size)
                    if size != SIZES[0]:  # the lowest-latency choice beside the page's, where they differ
                        results.append(measure_path(browser, server.url, "browser", size, seconds, painters=1))
                    if size == SIZES[-1]:
                        for path in ("browser", "server"):
                            results.append(measure_path(browser, server.url, path, size, seconds, viewers=2))
            defaults = Settings.model_validate({"models_dir": models_dir, "dream": False, "ice_loopback": True})
            with _Server(defaults) as server:  # what a newcomer gets: each path's governor picks the size
                for path in ("browser", "server"):
                    results.append(measure_path(browser, server.url, path, SIZES[-1], seconds, adaptive=True))
        finally:
            browser.close()
    return results


def _in_browser_table_frame(models_dir: Path, seconds: float, skipped: str = "") -> Table:
    """The table's title, columns, set-up and goal."""
    realtime = next(
        (e for e in contract.read_manifest(models_dir / contract.MANIFEST_NAME) if e.tier == "realtime"), None
    )
    sha = realtime.sha256[:12] if realtime else "n/a"
    return Table(
        title="14. Painting in the browser against painting on the server",
        header=[
            "path",
            "camera",
            "viewers",
            "frames shown/s",
            "camera to screen median / p95 ms",
            "browser CPU ms per frame",
            "server CPU ms per frame",
            "how",
        ],
        setup=(
            f"The realtime model (sha256 {sha}) in headless Chromium on this machine: `?paint=browser` runs it "
            "in onnxruntime-web (WASM, in a worker), `?paint=server` streams over WebRTC to the server in this "
            "process and back. A canvas camera at 30 fps with a frame counter drawn into it; latency is the "
            "counter read back from the screen (the painted canvas, or each decoded video frame). Each size "
            f"held fixed on both paths (adaptive resolution off), then the defaults at 640x480 ('adaptive': each "
            f"path's resolution governor picks the size); {seconds:.0f} s per row after 2 s start-up. "
            "CPU: Chromium's processes and the server process, over the frames shown. Browser, server and "
            "camera share the same 2 cores: a second viewer's browser here is a second machine in real use. "
            "`python -m training.bench --only in_browser`."
        ),
        goal=(
            f"in the browser >= {GOAL_FPS_MID:.0f} fps at 480x360 and >= {GOAL_FPS_FULL:.0f} fps at 640x480, at "
            f"least the server path's frame rate at each size, median latency <= {GOAL_LATENCY}x the server "
            "path's; a second in-browser viewer costs the server nothing per frame; WebGPU at 640x480 >= 30 fps "
            "where a GPU is present."
        ),
        skipped=skipped,
    )


def in_browser_table(results: list[PathResult], models_dir: Path, seconds: float, skipped: str = "") -> Table:
    table = _in_browser_table_frame(models_dir, seconds, skipped)
    by = {(r.path, r.size, r.viewers): r for r in results if not r.adaptive and not r.forced}
    for r in results:
        lat = (
            f"{np.median(r.latency):.0f} / {np.percentile(r.latency, 95):.0f} ({len(r.latency)} read)"
            if len(r.latency) >= 10
            else f"n/a ({len(r.latency)} read)"
        )
        camera = (
            f"{r.size[0]}x{r.size[1]}"
            + (", adaptive" if r.adaptive else "")
            + (f", ?painters={r.painters}" if r.forced else "")
        )
        table.rows.append(
            [
                r.path,
                camera,
                str(r.viewers),
                f"{r.fps:.1f}",
                lat,
                f"{r.browser_cpu_ms:.0f}",
                f"{r.server_cpu_ms:.1f}",
                r.detail,
            ]
        )
    table.verdicts += _size_verdicts(by) + _painter_verdicts(results, by) + _path_verdicts(results, by)
    table.notes.append(
        "WebGPU: this machine has no GPU (Chromium's only adapter is the SwiftShader fallback, which "
        "the page never picks by itself), so the WebGPU goal is not measured here."
    )
    return table


def _size_verdicts(by: dict[tuple[str, tuple[int, int], int], PathResult]) -> list[str]:
    """Each fixed size: the browser against its goal and against the server path."""
    said: list[str] = []
    for size in SIZES:
        here, there = by.get(("browser", size, 1)), by.get(("server", size, 1))
        if here is None or there is None:
            continue
        goal = GOAL_FPS_FULL if size == SIZES[-1] else GOAL_FPS_MID if size == SIZES[1] else 0.0
        met = here.fps >= goal and here.fps >= there.fps
        line = f"{size[0]}x{size[1]}: in the browser {here.fps:.1f} fps against the server path's {there.fps:.1f}"
        if len(here.latency) >= 10 and len(there.latency) >= 10:
            ratio = float(np.median(here.latency) / np.median(there.latency))
            met = met and ratio <= GOAL_LATENCY
            line += f", latency {ratio:.2f}x the server path's"
        said.append(f"{line}: {'meets' if met else 'MISSES'} the goal.")
    return said


def _painter_verdicts(results: list[PathResult], by: dict[tuple[str, tuple[int, int], int], PathResult]) -> list[str]:
    """What the page's painters bought at each fixed size against one painter: frames against latency."""
    said: list[str] = []
    for one in (r for r in results if r.forced and r.path == "browser"):
        chosen, server = by.get(("browser", one.size, 1)), by.get(("server", one.size, 1))
        if chosen is None or server is None or min(len(one.latency), len(chosen.latency), len(server.latency)) < 10:
            continue
        mine, single, theirs = (float(np.median(r.latency)) for r in (chosen, one, server))
        said.append(
            f"{one.size[0]}x{one.size[1]}, the page's {chosen.painters} painters against {one.painters}: "
            f"{chosen.fps:.1f} against {one.fps:.1f} fps, latency {mine:.0f} against {single:.0f} ms "
            f"({mine / theirs:.2f}x and {single / theirs:.2f}x the server path's)."
        )
    return said


def _painters(count: int) -> str:
    return f"{count} painters" if count > 1 else "one painter"


def _path_verdicts(results: list[PathResult], by: dict[tuple[str, tuple[int, int], int], PathResult]) -> list[str]:
    """The defaults, where the browser's frame time goes, and what a second in-browser viewer costs the server."""
    said: list[str] = []
    adaptive = {r.path: r for r in results if r.adaptive}
    if len(adaptive) == 2 and len(adaptive["browser"].latency) >= 10 and len(adaptive["server"].latency) >= 10:
        here, there = adaptive["browser"], adaptive["server"]
        ratio = float(np.median(here.latency) / np.median(there.latency))
        said.append(
            f"with the defaults (a 640x480 camera, each governor choosing the size): in the browser {here.fps:.1f} fps "
            f"({here.side} px) against the server path's {there.fps:.1f}, latency {ratio:.2f}x "
            f"the server path's: {'at least' if here.fps >= there.fps else 'below'} its frame rate, "
            f"{'within' if ratio <= GOAL_LATENCY else 'over'} the latency goal."
        )
    # One painter's frame is the question here: with several at once, a run spans more than a frame interval.
    single = [r for r in results if r.path == "browser" and r.size == SIZES[1] and r.painters == 1 and r.forced]
    mid = single[0] if single else by.get(("browser", SIZES[1], 1))
    if mid is not None and mid.alone_ms and mid.fps:
        frame = 1000.0 / mid.fps
        bound = mid.alone_ms >= 0.85 * frame
        said.append(
            f"where a 480x360 frame's time goes in the browser ({_painters(mid.painters)}): session.run "
            f"{mid.run_ms:.1f} ms of the "
            f"{frame:.1f} ms between frames shown; the same painter with the camera loop stopped takes "
            f"{mid.alone_ms:.1f} ms a frame, "
            + (
                "so the loop around it adds little: the model's WASM run is what is left to win on this CPU."
                if bound
                else f"so {frame - mid.alone_ms:.1f} ms a frame go to the loop around it (camera, page, drawing)."
            )
        )
    second = by.get(("browser", SIZES[-1], 2))
    if second is not None:
        said.append(
            f"two in-browser viewers: the server's CPU per frame shown is "
            f"{second.server_cpu_ms:.1f} ms ({'meets' if second.server_cpu_ms < 1 else 'MISSES'} "
            "the goal of ~0)."
        )
    return said
