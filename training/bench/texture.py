"""Table 11: texture synthesis on raw pixels (Efros-Leung 1999, Wei-Levoy 2000) beside Gram matching (Gatys 2015).

Four samples (a regular one, a stochastic one, text, a crop of a painting), each synthesised at SIZE x SIZE by the
three methods; each result's time and its Gram (style) loss against the sample, and one figure of all of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from training import images
from training.bench.report import Table
from training.features import STYLE_TAPS, VGGFeatures, load_vgg
from training.interpret import figures
from training.losses import style_loss
from training.optimize.engine import OptimConfig
from training.optimize.gatys import blended_grams
from training.optimize.pixel_texture import PixelTextureConfig, synthesize_pixels
from training.optimize.texture import TextureConfig, synthesize

METHODS = ("efros-leung", "wei-levoy", "gram")
GOAL_SECONDS = 60.0  # Wei-Levoy, 128x128 from a 64x64 sample
TEXT = (
    "Texture synthesis by non-parametric sampling. Fast texture synthesis using tree-structured vector "
    "quantization. A neural algorithm of artistic style."
)


@dataclass(frozen=True)
class TexturePlan:
    samples: tuple[tuple[str, np.ndarray], ...]  # name, RGB uint8 sample
    size: int = 128
    gram_iterations: int = 100
    figure: Path | None = None


@dataclass(frozen=True)
class Synthesis:
    sample: str
    method: str
    image: np.ndarray  # RGB uint8 [size,size,3]
    seconds: float
    gram_loss: float


def text_sample(side: int = 64) -> np.ndarray:
    """Printed text: black on white, small type, filling the square (Pillow's own font)."""
    canvas = Image.new("RGB", (side, side), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=9)
    words, line, y = TEXT.split(), "", 0
    for word in words * 4:
        trial = f"{line} {word}".strip()
        if draw.textlength(trial, font=font) > side - 2:
            draw.text((1, y), line, fill="black", font=font)
            line, y = word, y + 10
            if y > side - 8:
                break
        else:
            line = trial
    return np.asarray(canvas)


def default_samples(painting: Path | None, side: int = 64) -> tuple[tuple[str, np.ndarray], ...]:
    """scikit-image's brick (regular) and gravel (stochastic) photos, printed text, a painting's crop."""
    from skimage import data

    def square(gray_or_rgb: np.ndarray, crop: int) -> np.ndarray:
        rgb = np.dstack([gray_or_rgb] * 3) if gray_or_rgb.ndim == 2 else gray_or_rgb[..., :3]
        piece = Image.fromarray(rgb[:crop, :crop].astype(np.uint8))
        return np.asarray(piece.resize((side, side), Image.Resampling.LANCZOS))

    samples = [
        ("bricks (regular)", square(data.brick(), 192)),
        ("gravel (stochastic)", square(data.gravel(), 192)),
        ("text", text_sample(side)),
    ]
    if painting is not None and painting.is_file():
        art = images.open_rgb(painting)
        art = images.resize_short_side(art, 256)
        samples.append(
            (
                f"{painting.stem} (painting)",
                np.asarray(images.center_crop(art, 96).resize((side, side), Image.Resampling.LANCZOS)),
            )
        )
    return tuple(samples)


def gram_loss(vgg: VGGFeatures, sample: np.ndarray, result: np.ndarray) -> float:
    """The style loss (1e6 x the mean squared Gram difference over relu1_1..relu4_1) of a result against its
    sample: the Gram method's own objective, so it favours that method by construction; read it beside the figure."""
    with torch.no_grad():
        target = blended_grams(vgg, [images.to_tensor(Image.fromarray(sample))], [1.0], STYLE_TAPS)
        return float(style_loss(vgg(images.to_tensor(Image.fromarray(result))), target, STYLE_TAPS))


def synthesize_one(
    plan: TexturePlan, name: str, sample: np.ndarray, method: str, vgg: VGGFeatures, scratch: Path
) -> Synthesis:
    started = time.perf_counter()
    if method == "gram":
        path = scratch / ("".join(c if c.isalnum() else "_" for c in name) + ".png")
        Image.fromarray(sample).save(path)
        cfg = TextureConfig(texture=path, size=plan.size, source_size=min(sample.shape[:2]), layer_sets=(STYLE_TAPS,))
        _, (result,) = synthesize(cfg, OptimConfig(iterations=(plan.gram_iterations,), progress=False), vgg)
        image = np.asarray(images.to_image(result.image))
    else:
        window = 11 if method == "efros-leung" else 7
        image = synthesize_pixels(method, sample, PixelTextureConfig(size=plan.size, window=window, levels=2))
    seconds = time.perf_counter() - started
    return Synthesis(name, method, image, seconds, gram_loss(vgg, sample, image))


def measure_textures(plan: TexturePlan, scratch: Path) -> list[Synthesis]:
    vgg = load_vgg(STYLE_TAPS)
    return [
        synthesize_one(plan, name, sample, method, vgg, scratch) for name, sample in plan.samples for method in METHODS
    ]


def texture_figure(plan: TexturePlan, results: list[Synthesis]) -> Image.Image:
    rows = []
    for name, sample in plan.samples:
        mine = [r for r in results if r.sample == name]
        pictures = [
            Image.fromarray(sample).resize((plan.size, plan.size), Image.Resampling.NEAREST),
            *(Image.fromarray(r.image) for r in mine),
        ]
        captions = [
            f"{name}, {sample.shape[1]} px",
            *(f"{r.method}: {r.seconds:.0f} s, Gram {r.gram_loss:.3g}" for r in mine),
        ]
        rows.append(figures.captioned_row(pictures, captions, 192))
    return figures.stack(rows)


def texture_table(plan: TexturePlan, results: list[Synthesis]) -> Table:
    side = min(plan.samples[0][1].shape[:2]) if plan.samples else 0
    table = Table(
        title="11. Texture synthesis: raw pixels vs Gram matching",
        header=["sample", "method", "seconds", "Gram loss vs the sample"],
        setup=f"{plan.size}x{plan.size} from a {side}x{side} sample, torch and NumPy on this machine's threads. "
        "Efros-Leung: 11 px window, error threshold 0.1; Wei-Levoy: 7 px causal then full neighbourhoods, "
        f"2 pyramid levels, scikit-learn's nearest-neighbour index; Gram: L-BFGS, {plan.gram_iterations} "
        "iterations on VGG19 relu1_1..relu4_1 (training/bench/texture.py).",
        goal=f"Wei-Levoy <= {GOAL_SECONDS:.0f} s; Efros-Leung timed and reported.",
    )
    for r in results:
        table.rows.append([r.sample, r.method, f"{r.seconds:.1f}", f"{r.gram_loss:.3g}"])
    for method in ("wei-levoy", "efros-leung"):
        times = [r.seconds for r in results if r.method == method]
        if times:
            worst = max(times)
            verdict = ("met" if worst <= GOAL_SECONDS else "missed") if method == "wei-levoy" else "reported"
            table.verdicts.append(
                f"{method}: at most {worst:.1f} s per texture (mean {np.mean(times):.1f} s): {verdict}."
            )
    wl = [r.seconds for r in results if r.method == "wei-levoy"]
    el = [r.seconds for r in results if r.method == "efros-leung"]
    if wl and el:
        table.verdicts.append(f"Efros-Leung takes {np.mean(el) / np.mean(wl):.1f}x Wei-Levoy's time.")
    if plan.figure is not None:
        shown = plan.figure.relative_to(plan.figure.parents[2]).as_posix()  # docs/optimization/<name>.png
        table.notes.append(
            f"The pictures: {shown} (sample | Efros-Leung | Wei-Levoy | Gram). "
            "The Gram loss is the Gram method's own objective, so it favours Gram by construction."
        )
    return table
