"""Table 2: style and content loss (../shared/QUALITY-METRIC.md) of our models, Gatys and the peer.

Every output is scored as a saved 8-bit image against the same 256x256 photo crop and the painting at
shorter side 256. Style Grams of each painting and content features of each photo are computed once;
each output then costs one VGG19 forward.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from service import contract
from service.engine import Engine
from training import images
from training.bench.peer import ArbitraryStyle
from training.bench.report import Table, fmt
from training.features import CONTENT_TAP, VGGFeatures
from training.losses import gram
from training.quality import score_against

log = logging.getLogger(__name__)
GATYS = "Gatys"
PEER = "peer arbitrary"
STYLE_FACTOR_GATYS, CONTENT_FACTOR = 1.5, 1.1


@dataclass(frozen=True)
class QualityPlan:
    photos: tuple[Path, ...]
    paintings: dict[str, Path]  # style name -> painting file
    size: int = 256  # the metric's size; smaller only in tests
    gatys_pairs: int = 2  # (photo, style) pairs optimised with Gatys: first photos x all styles, in order
    gatys_iterations: int = 100
    sheet_photos: int = 2


@dataclass
class Scores:
    """(photo, style) -> (style loss, content loss) for each method."""

    by_method: dict[str, dict[tuple[str, str], tuple[float, float]]] = field(default_factory=dict)

    def add(self, method: str, photo: str, style: str, value: tuple[float, float]) -> None:
        self.by_method.setdefault(method, {})[(photo, style)] = value

    def mean(
        self, method: str, style: str | None = None, keys: set[tuple[str, str]] | None = None
    ) -> tuple[float, float, int]:
        items = [
            v
            for k, v in self.by_method.get(method, {}).items()
            if (style is None or k[1] == style) and (keys is None or k in keys)
        ]
        if not items:
            return float("nan"), float("nan"), 0
        return statistics.fmean(i[0] for i in items), statistics.fmean(i[1] for i in items), len(items)


class Metric:
    """The project's quality metric with cached targets."""

    def __init__(self, vgg: VGGFeatures, size: int) -> None:
        self.vgg, self.size = vgg, size
        self._grams: dict[Path, dict[str, torch.Tensor]] = {}
        self._content: dict[Path, torch.Tensor] = {}

    def photo(self, path: Path) -> torch.Tensor:
        return images.load_image(path, self.size, square=True)

    def painting(self, path: Path) -> torch.Tensor:
        return images.load_image(path, self.size)

    @torch.no_grad()
    def score(self, output: torch.Tensor, photo: Path, painting: Path) -> tuple[float, float]:
        if painting not in self._grams:
            self._grams[painting] = {t: gram(f) for t, f in self.vgg(self.painting(painting)).items()}
        if photo not in self._content:
            self._content[photo] = self.vgg(self.photo(photo))[CONTENT_TAP]
        scores = score_against(self.vgg, output, self._grams[painting], self._content[photo])
        return scores.style, scores.content


def gatys_function() -> Callable[[Path, Path, int, int, VGGFeatures], torch.Tensor] | None:
    """Gatys from training.optimize.gatys when it is there (it is another engineer's module): (photo, painting,
    size, iterations, vgg) -> [1,3,size,size]."""
    try:
        from training.optimize import gatys
        from training.optimize.engine import OptimConfig
    except ImportError:
        return None

    def run(photo: Path, painting: Path, size: int, iterations: int, vgg: VGGFeatures) -> torch.Tensor:
        cfg = gatys.GatysConfig(content=photo, styles=(painting,), size=size, content_weight=1.0, style_weight=1e-4)
        return gatys.stylize(cfg, OptimConfig(iterations=(iterations,), progress=False), vgg).image

    return run


def measure_quality(
    plan: QualityPlan, engine: Engine, models: list[str], arbitrary: ArbitraryStyle | None, vgg: VGGFeatures
) -> tuple[Scores, dict[tuple[str, str], dict[str, Image.Image]]]:
    """Scores of every method, and the pictures of the contact sheet's pairs."""
    metric, scores = Metric(vgg, plan.size), Scores()
    gatys = gatys_function() if plan.gatys_pairs else None
    pairs = [(p, s) for p in plan.photos for s in plan.paintings]
    gatys_keys = set(pairs[: plan.gatys_pairs])
    sheet_keys = {(p, s) for p, s in pairs if p in plan.photos[: plan.sheet_photos]} | gatys_keys
    sheet: dict[tuple[str, str], dict[str, Image.Image]] = {}
    vectors = {s: arbitrary.style_vector(images.open_rgb(f)) for s, f in plan.paintings.items()} if arbitrary else {}
    with tempfile.TemporaryDirectory() as tmp:
        for index, photo in enumerate(plan.photos):
            crop = metric.photo(photo)
            rgb = contract.frame_to_image(crop.numpy())
            crop_file = Path(tmp) / f"{index}.png"
            Image.fromarray(rgb).save(crop_file)
            for style, painting in plan.paintings.items():
                key = (photo.stem, style)
                outputs: dict[str, Image.Image] = {}
                for name in models:
                    styles = engine.model(name).styles
                    out = engine.stylize(rgb, contract.one_hot(styles.index(style), len(styles)), model=name)
                    outputs[name] = Image.fromarray(out)
                if arbitrary is not None:
                    outputs[PEER] = arbitrary.stylize(Image.fromarray(rgb), vectors[style])
                if gatys is not None and (photo, style) in gatys_keys:
                    log.info("Gatys on %s / %s", photo.stem, style)
                    outputs[GATYS] = images.to_image(gatys(crop_file, painting, plan.size, plan.gatys_iterations, vgg))
                for method, picture in outputs.items():
                    scores.add(method, *key, metric.score(images.to_tensor(picture), photo, painting))
                if (photo, style) in sheet_keys:
                    sheet[key] = {"photo": Image.fromarray(rgb), "painting": images.open_rgb(painting), **outputs}
            log.info("quality: photo %d/%d", index + 1, len(plan.photos))
    return scores, sheet


def contact_sheet(
    sheet: dict[tuple[str, str], dict[str, Image.Image]], columns: list[str], cell: int = 192
) -> Image.Image:
    """Rows (photo, style); columns photo, painting, then each method side by side, labelled on top."""
    cols = ["photo", "painting", *columns]
    rows = [[pics.get(c) for c in cols] for pics in sheet.values()]
    pad, label = 4, 16
    out = Image.new("RGB", (len(cols) * (cell + pad) + pad, label + len(rows) * (cell + pad) + pad), "white")
    draw = ImageDraw.Draw(out)
    for c, name in enumerate(cols):
        draw.text((pad + c * (cell + pad) + 2, 2), name, fill="black")
    for r, (key, row) in enumerate(zip(sheet, rows, strict=True)):
        for c, picture in enumerate(row):
            x, y = pad + c * (cell + pad), label + pad + r * (cell + pad)
            if picture is None:
                draw.text((x + 4, y + cell // 2), "not run", fill="grey")
                continue
            thumb = picture.copy()
            thumb.thumbnail((cell, cell), Image.Resampling.LANCZOS)
            out.paste(thumb, (x, y))
        draw.text((pad + 2, label + pad + r * (cell + pad) + cell - 12), f"{key[0]} / {key[1]}", fill="white")
    return out


def quality_table(scores: Scores, plan: QualityPlan, models: dict[str, str], sheet_path: Path | None) -> Table:
    """``models``: our model name -> tier."""
    methods = [*models, PEER, GATYS]
    header = ["style", *(f"{m} style / content" for m in methods)]
    table = Table(
        title="2. Quality: style and content loss (VGG19, QUALITY-METRIC.md)",
        header=header,
        setup=(
            f"{len(plan.photos)} held-out photos (bsds_val_*, never trained on) x {len(plan.paintings)} paintings "
            f"at {plan.size}x{plan.size}, outputs scored as 8-bit images; mean style loss / mean content loss. "
            f"Gatys (L-BFGS {plan.gatys_iterations} iterations, content weight 1, style weight 1e-4, init the "
            f"photo) on the first {plan.gatys_pairs} (photo, style) pairs only."
        ),
        goal=(
            f"realtime style loss <= the peer's at <= {CONTENT_FACTOR}x its content loss; quality style loss "
            f"<= {STYLE_FACTOR_GATYS}x Gatys' at <= {CONTENT_FACTOR}x its content loss (on Gatys' pairs)."
        ),
    )
    if plan.size != 256:
        table.notes.append(f"Scored at {plan.size} px, not the metric's 256: not comparable with QUALITY-METRIC.md.")
    for style in [*plan.paintings, None]:
        row = [style or "**all**"]
        for m in methods:
            s, c, n = scores.mean(m, style)
            row.append(f"{fmt(s)} / {fmt(c)}" + (f" (n={n})" if m == GATYS and n else "") if n else "not run")
        table.rows.append(row)
    peer_s, peer_c, peer_n = scores.mean(PEER)
    gatys_keys = set(scores.by_method.get(GATYS, {}))
    g_s, g_c, g_n = scores.mean(GATYS)
    for name, tier in models.items():
        if tier == "realtime":
            if not peer_n:
                table.verdicts.append(f"{name}: no peer scores in this run; the realtime quality goal is not assessed.")
                continue
            s, c, _ = scores.mean(name)
            met = s <= peer_s and c <= CONTENT_FACTOR * peer_c
            table.verdicts.append(
                f"{name}: style loss {s / peer_s:.2f}x the peer's at {c / peer_c:.2f}x its content loss: "
                f"{'meets' if met else 'MISSES'} the goal (<= 1x at <= {CONTENT_FACTOR}x)."
            )
        else:
            if not g_n:
                table.verdicts.append(f"{name}: Gatys not run; the quality-tier goal is not assessed.")
                continue
            s, c, _ = scores.mean(name, keys=gatys_keys)
            met = s <= STYLE_FACTOR_GATYS * g_s and c <= CONTENT_FACTOR * g_c
            table.verdicts.append(
                f"{name}: on Gatys' {g_n} pairs, style loss {s / g_s:.2f}x Gatys' at {c / g_c:.2f}x its content "
                f"loss: {'meets' if met else 'MISSES'} the goal (<= {STYLE_FACTOR_GATYS}x at <= {CONTENT_FACTOR}x)."
            )
    if "quality" not in models.values():
        table.notes.append("No quality-tier model is bundled yet: its column is absent.")
    if not g_n:
        table.notes.append("Gatys: not available in this run (training.optimize.gatys missing or --gatys-pairs 0).")
    if sheet_path is not None:
        table.notes.append(f"Contact sheet: {sheet_path.name} (photo, painting, {', '.join(methods)}).")
    return table
