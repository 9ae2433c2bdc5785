"""Table 9: the look at the size people watch (640x480): grid score, live-size loss, brush cost, video sheet.

Held-out photos (bsds_val_*, never trained on) become 640x480 frames; every painting style of each of our
models and the peer's arbitrary mode (given the same painting) paints them. Each output is scored as the
8-bit frame it would be: the grid score (training/grid.py) and the live-size style and content loss
(training/quality.py, painting at the frame's height), both defined in ../shared/QUALITY-METRIC.md. The brush
rows time ``Engine.stylize`` (network, resizes and guided upsampling) at each brush on one ORT thread.
The contact sheet shows real video frames (vtest.avi, tree.avi) at 640x480, each tier beside the peer.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from service import contract
from service.engine import Engine
from training import images
from training.bench.peer import ArbitraryStyle
from training.bench.report import Table, fmt
from training.grid import geometric_mean, grid_score
from training.quality import LIVE_HEIGHT, LIVE_WIDTH, LiveScorer, as_live_frame, live_frame

log = logging.getLogger(__name__)
PEER = "peer arbitrary"
GRID_GOAL = 2.0
RT_STYLE_VS_PEER, RT_CONTENT_VS_PEER = 0.5, 1.1
QUALITY_STYLE_VS_RT = 0.6
BRUSHES = (0.5, 1.0, 1.5, 2.0, 3.0)


@dataclass(frozen=True)
class LivePlan:
    photos: tuple[Path, ...]
    paintings: dict[str, Path]  # style name -> painting file
    videos: tuple[Path, ...] = ()  # frames for the contact sheet
    sheet: Path | None = None
    sheet_styles: int = 2
    brush_runs: int = 7


@dataclass
class LiveScores:
    """Per method: grid scores and (style, content) losses over photos x paintings; brush timings."""

    grid: dict[str, list[float]] = field(default_factory=dict)
    mesh8: dict[str, list[float]] = field(default_factory=dict)  # the score at eighths: an 8-pixel mesh too
    style_grid: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (method, style) -> scores
    loss: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    brush_ms: dict[float, float] = field(default_factory=dict)
    brush_grid: dict[float, float] = field(default_factory=dict)
    brush_mesh8: dict[float, float] = field(default_factory=dict)

    def add(
        self, method: str, style: str, frame: np.ndarray, out: np.ndarray, painting: Path, scorer: LiveScorer
    ) -> None:
        self.grid.setdefault(method, []).append(grid_score(out))
        self.mesh8.setdefault(method, []).append(grid_score(out, divisions=8))
        self.style_grid.setdefault((method, style), []).append(self.grid[method][-1])
        s = scorer.score(out, frame, painting)
        self.loss.setdefault(method, []).append((s.style, s.content))

    def mean_loss(self, method: str) -> tuple[float, float]:
        items = self.loss.get(method, [])
        if not items:
            return float("nan"), float("nan")
        return statistics.fmean(i[0] for i in items), statistics.fmean(i[1] for i in items)

    def worst_style(self, method: str) -> tuple[str, float]:
        """The style whose grid score (geometric mean over the photos) is highest, and that score."""
        per = {s: geometric_mean(g) for (m, s), g in self.style_grid.items() if m == method}
        style = max(per, key=per.__getitem__)
        return style, per[style]


def paint(engine: Engine, model: str, frame: np.ndarray, style: str, brush: float = 1.0) -> np.ndarray:
    styles = engine.model(model).styles
    return engine.stylize(frame, contract.one_hot(styles.index(style), len(styles)), model=model, brush=brush)


def peer_paint(arbitrary: ArbitraryStyle, vector: np.ndarray, frame: np.ndarray) -> np.ndarray:
    return np.asarray(arbitrary.stylize(Image.fromarray(frame), vector))


def measure_live(
    plan: LivePlan, engine: Engine, models: list[str], arbitrary: ArbitraryStyle | None, scorer: LiveScorer
) -> LiveScores:
    scores = LiveScores()
    vectors = {s: arbitrary.style_vector(images.open_rgb(p)) for s, p in plan.paintings.items()} if arbitrary else {}
    for index, photo in enumerate(plan.photos):
        frame = live_frame(photo)
        scores.grid.setdefault("photo", []).append(grid_score(frame))
        scores.mesh8.setdefault("photo", []).append(grid_score(frame, divisions=8))
        for style, painting in plan.paintings.items():
            for name in models:
                scores.add(name, style, frame, paint(engine, name, frame, style), painting, scorer)
            if arbitrary is not None:
                scores.add(PEER, style, frame, peer_paint(arbitrary, vectors[style], frame), painting, scorer)
        log.info("live size: photo %d/%d", index + 1, len(plan.photos))
    realtime = models[0]
    frame = live_frame(plan.photos[0])
    style = next(iter(plan.paintings))
    for brush in BRUSHES:
        times = []
        for _ in range(plan.brush_runs):
            start = time.perf_counter()
            out = paint(engine, realtime, frame, style, brush)
            times.append((time.perf_counter() - start) * 1000)
        scores.brush_ms[brush] = statistics.median(times)
        scores.brush_grid[brush] = grid_score(out)
        scores.brush_mesh8[brush] = grid_score(out, divisions=8)
    return scores


def video_frames(path: Path, count: int = 2) -> list[np.ndarray]:
    """``count`` frames spread over a video, as 640x480 RGB (scaled to cover, centre crop)."""
    capture = cv2.VideoCapture(str(path))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or 1
    wanted = {(k + 1) * total // (count + 1) for k in range(count)}
    picked: list[np.ndarray] = []
    last: np.ndarray | None = None
    for index in range(max(wanted) + 1):  # read in order: seeking fails on some files (tree.avi)
        if not capture.grab():
            break
        ok, bgr = capture.retrieve()
        if ok:
            last = bgr
            if index in wanted:
                picked.append(bgr)
    capture.release()
    if len(picked) < count and last is not None:  # fewer frames decode than the header says: take the last
        picked.append(last)
    return [as_live_frame(Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))) for bgr in picked[:count]]


def sheet_frames(plan: LivePlan) -> list[np.ndarray]:
    """One frame from the middle of each of the plan's videos, at 640x480."""
    return [f for v in plan.videos for f in video_frames(v, 1)]


def video_sheet(
    plan: LivePlan, frames: list[np.ndarray], engine: Engine, models: list[str], arbitrary: ArbitraryStyle | None
) -> Image.Image:
    """Rows: (video frame, style); columns: the frame, each of our models, the peer; full 640x480 cells
    shown at half size so the mesh (or its absence) is visible."""
    styles = list(plan.paintings)[: plan.sheet_styles]
    columns = ["frame", *models, *([PEER] if arbitrary else [])]
    vectors = {s: arbitrary.style_vector(images.open_rgb(plan.paintings[s])) for s in styles} if arbitrary else {}
    cw, ch, pad, label = LIVE_WIDTH // 2, LIVE_HEIGHT // 2, 4, 16
    rows = [(f, s) for f in frames for s in styles]
    sheet = Image.new("RGB", (len(columns) * (cw + pad) + pad, label + len(rows) * (ch + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for c, name in enumerate(columns):
        draw.text((pad + c * (cw + pad) + 2, 2), name, fill="black")
    for r, (frame, style) in enumerate(rows):
        cells = [frame, *(paint(engine, m, frame, style) for m in models)]
        if arbitrary is not None:
            cells.append(peer_paint(arbitrary, vectors[style], frame))
        for c, cell in enumerate(cells):
            picture = Image.fromarray(cell).resize((cw, ch), Image.Resampling.BOX)
            sheet.paste(picture, (pad + c * (cw + pad), label + pad + r * (ch + pad)))
        draw.text((pad + 2, label + pad + r * (ch + pad) + ch - 12), style, fill="white")
    return sheet


def crop_sheet(
    plan: LivePlan, frames: list[np.ndarray], engine: Engine, models: list[str], arbitrary: ArbitraryStyle | None
) -> Image.Image:
    """A 1:1 crop (no scaling: the mesh shows as it does on screen) of one video frame per model and the peer."""
    style = next(iter(plan.paintings))
    frame = frames[0]
    cells = [frame, *(paint(engine, m, frame, style) for m in models)]
    if arbitrary is not None:
        cells.append(peer_paint(arbitrary, arbitrary.style_vector(images.open_rgb(plan.paintings[style])), frame))
    crops = [Image.fromarray(c[120:360, 160:480]) for c in cells]
    out = Image.new("RGB", (len(crops) * 324 + 4, 244), "white")
    for i, crop in enumerate(crops):
        out.paste(crop, (4 + i * 324, 4))
    return out


def _live_verdicts(table: Table, scores: LiveScores, models: dict[str, str]) -> None:
    """Each model's grid goal, the realtime tier against the peer, the quality tier against the realtime one."""
    tiers = {t: m for m, t in reversed(models.items())}
    for m in models:
        grid = geometric_mean(scores.grid[m])
        style, worst = scores.worst_style(m)
        met = max(grid, worst) <= GRID_GOAL
        table.verdicts.append(
            f"{m}: grid score {grid:.2f}, worst style {style} {worst:.2f}: "
            f"{'meets' if met else 'MISSES'} the goal (<= {GRID_GOAL}, every style)."
        )
    if "realtime" in tiers and PEER in scores.loss:
        (s, c), (ps, pc) = scores.mean_loss(tiers["realtime"]), scores.mean_loss(PEER)
        met = s <= RT_STYLE_VS_PEER * ps and c <= RT_CONTENT_VS_PEER * pc
        table.verdicts.append(
            f"{tiers['realtime']}: live-size style {s / ps:.2f}x the peer's at {c / pc:.2f}x its "
            f"content: {'meets' if met else 'MISSES'} the goal."
        )
    if "realtime" in tiers and "quality" in tiers:
        (s, c), (rs, rc) = scores.mean_loss(tiers["quality"]), scores.mean_loss(tiers["realtime"])
        met = s <= QUALITY_STYLE_VS_RT * rs and c <= rc
        table.verdicts.append(
            f"{tiers['quality']}: live-size style {s / rs:.2f}x the realtime tier's at {c / rc:.2f}x "
            f"its content: {'meets' if met else 'MISSES'} the goal."
        )


def _live_table_frame(plan: LivePlan, models: dict[str, str], hashes: dict[str, str]) -> Table:
    """The table's title, columns, set-up and goal."""
    return Table(
        title="9. The look at 640x480: grid score and live-size loss",
        header=[
            "method",
            "grid score (geo. mean)",
            "worst frame",
            "worst style (geo. mean)",
            "8-px mesh (geo. mean)",
            "live-size style",
            "live-size content",
        ],
        setup=(
            f"{len(plan.photos)} held-out photos (bsds_val_*) as 640x480 frames x {len(plan.paintings)} paintings; "
            "outputs scored as 8-bit frames. Grid score and live-size loss as defined in QUALITY-METRIC.md "
            "(painting at 480 px, the frame's height). The 8-px mesh column is the same score over the 63 bins at "
            "eighths of a side: a mesh with an 8-pixel period, which the defined score does not see. Models: "
            + ", ".join(f"{m} sha256 {hashes[m][:12]}" for m in models if m in hashes)
            + "."
        ),
        goal=(
            f"grid score <= {GRID_GOAL} for both tiers, every style; realtime live-size style <= "
            f"{RT_STYLE_VS_PEER}x the peer's at <= {RT_CONTENT_VS_PEER}x its content; quality style <= "
            f"{QUALITY_STYLE_VS_RT}x the realtime tier's at <= its content."
        ),
    )


def live_table(
    plan: LivePlan, scores: LiveScores, models: dict[str, str], sheet: Path | None, hashes: dict[str, str]
) -> Table:
    """``models``: our model name -> tier, realtime first; ``hashes``: model name -> sha256."""
    methods = [*models, *([PEER] if PEER in scores.loss else [])]
    table = _live_table_frame(plan, models, hashes)
    photos = scores.grid["photo"]
    table.rows.append(
        [
            "the photos",
            f"{geometric_mean(photos):.2f}",
            f"{max(photos):.1f}",
            "-",
            f"{geometric_mean(scores.mesh8['photo']):.2f}",
            "-",
            "-",
        ]
    )
    for m in methods:
        s, c = scores.mean_loss(m)
        g = scores.grid[m]
        style, worst = scores.worst_style(m)
        table.rows.append(
            [
                m,
                f"{geometric_mean(g):.2f}",
                f"{max(g):.1f}",
                f"{worst:.2f} ({style})",
                f"{geometric_mean(scores.mesh8[m]):.2f}",
                fmt(s),
                fmt(c),
            ]
        )
    for b in BRUSHES:
        realtime = next(iter(models))
        table.rows.append(
            [
                f"{realtime}, brush {b:g}: {scores.brush_ms[b]:.1f} ms per frame (1 thread)",
                f"{scores.brush_grid[b]:.2f}",
                "",
                "",
                f"{scores.brush_mesh8[b]:.2f}",
                "",
                "",
            ]
        )
    _live_verdicts(table, scores, models)
    if sheet is not None:
        table.notes.append(
            f"Pictures: {sheet.name} (video frames at 640x480 shown at half size: frame, "
            f"{', '.join(methods)}) and {sheet.stem}-crop.png (the centre at 1:1)."
        )
    return table
