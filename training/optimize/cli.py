"""``livestyle-train gatys|texture|invert|dream|quality``: the offline optimisation tools' flags.

Flags are read here, turned into frozen configs (training/optimize/engine.py's OptimConfig plus one per
method) and passed down; results are written atomically as PNGs plus a contact sheet per run.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageChops
from tqdm import tqdm

from training.features import CONTENT_TAP, STYLE_TAPS
from training.images import grid, open_rgb, save_png, to_image
from training.optimize.dream import DREAM_TAPS, DreamConfig, dream
from training.optimize.engine import OptimConfig, OptimResult
from training.optimize.gatys import GatysConfig, stylize
from training.optimize.invert import INVERT_TAPS, InvertConfig, invert
from training.optimize.pixel_texture import METHODS as PIXEL_METHODS
from training.optimize.pixel_texture import PixelTextureConfig, synthesize_pixels
from training.optimize.texture import TextureConfig, growing, synthesize
from training.quality import QualityScorer

log = logging.getLogger("livestyle.optimize")
SHOW_DEFAULTS = argparse.ArgumentDefaultsHelpFormatter


def _engine_flags(p: argparse.ArgumentParser, **defaults: Any) -> None:
    """The shared engine's flags; each method sets its own defaults."""
    g = p.add_argument_group("optimisation (shared engine)")
    g.add_argument("--iterations", type=int, nargs="+", help="per octave, coarse to fine (one value: all)")
    g.add_argument("--optimizer", choices=["lbfgs", "adam", "sgd"], help="optimizer")
    g.add_argument("--lr", type=float, help="step size (L-BFGS: 1)")
    g.add_argument("--param", dest="parameterization", choices=["pixels", "sigmoid"], help="image variables")
    g.add_argument("--tv-weight", type=float, help="total-variation regularizer")
    g.add_argument("--l2-weight", type=float, help="pull towards mid-grey")
    g.add_argument("--jitter", type=int, help="random shift in pixels before each step (adam/sgd)")
    g.add_argument("--blur-every", type=int, help="blur the image every N steps (0: never)")
    g.add_argument("--blur-sigma", type=float, help="blur radius in pixels")
    g.add_argument("--no-clip", dest="clip", action="store_false", help="do not clip pixels to [0,1]")
    g.add_argument(
        "--normalize-grad",
        action=argparse.BooleanOptionalAction,
        help="divide the gradient by its mean absolute value (adam/sgd)",
    )
    g.add_argument("--octaves", type=int, help="coarse-to-fine levels")
    g.add_argument("--octave-scale", type=float, help="size ratio between octaves")
    g.add_argument("--carry", choices=["image", "detail"], help="what moves up an octave")
    g.add_argument("--snapshot-every", type=int, help="save OUT/snapshots/*.png and an animated GIF")
    g.add_argument("--seed", type=int, help="noise and jitter seed")
    g.add_argument("--device", help="cpu or cuda")
    g.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument("--vgg-weights", help="torchvision VGG19 state_dict instead of the bundled weights")
    g.add_argument("--out", required=True, help="folder for the PNGs and the contact sheet")
    engine = OptimConfig()
    base = {f.name: getattr(engine, f.name) for f in fields(engine)}
    base["iterations"] = list(engine.iterations)
    p.set_defaults(**{**base, **defaults})


def _engine(args: argparse.Namespace, name: str) -> OptimConfig:
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    snapshots = bool(args.snapshot_every)
    return OptimConfig(
        iterations=tuple(args.iterations),
        optimizer=args.optimizer,
        lr=args.lr,
        parameterization=args.parameterization,
        tv_weight=args.tv_weight,
        l2_weight=args.l2_weight,
        jitter=args.jitter,
        blur_every=args.blur_every,
        blur_sigma=args.blur_sigma,
        clip=args.clip,
        normalize_grad=args.normalize_grad,
        octaves=args.octaves,
        octave_scale=args.octave_scale,
        carry=args.carry,
        snapshot_every=args.snapshot_every,
        snapshot_dir=out / "snapshots" / name if snapshots else None,
        gif_path=out / f"{name}.gif" if snapshots else None,
        seed=args.seed,
        device=args.device,
        progress=not args.quiet,
    )


def _vgg_weights(args: argparse.Namespace) -> Path | None:
    return Path(args.vgg_weights) if args.vgg_weights else None


def _report(name: str, result: OptimResult) -> None:
    terms = ", ".join(f"{k} {v:.4g}" for k, v in result.final_terms.items())
    speed = ", ".join(f"{size} {s:.2f}" for size, s in result.seconds_per_iteration.items())
    log.info("%s: %s; s/iteration: %s", name, terms, speed)


def _write(out: Path, name: str, image: torch.Tensor) -> Path:
    path = out / f"{name}.png"
    save_png(to_image(image), path)
    return path


def _sheet(out: Path, name: str, images: list[torch.Tensor], cell: int = 256) -> None:
    sheet = grid([[to_image(image) for image in images]], cell=cell)
    box = ImageChops.difference(sheet, Image.new("RGB", sheet.size, "white")).getbbox()
    if box:  # wide pictures leave the square cells' lower part empty
        sheet = sheet.crop((0, 0, min(sheet.width, box[2] + 4), min(sheet.height, box[3] + 4)))
    save_png(sheet, out / f"{name}_sheet.png")


def cmd_gatys(args: argparse.Namespace) -> None:
    cfg = GatysConfig(
        content=Path(args.content),
        styles=tuple(Path(s) for s in args.styles),
        blend=tuple(args.blend or ()),
        size=args.size,
        square=args.square,
        style_scale=args.style_scale,
        content_weight=args.content_weight,
        style_weight=args.style_weight,
        content_layers=tuple(args.content_layers),
        style_layers=tuple(args.style_layers),
        init=args.init,
        colour=args.colour,
        dream_layers=tuple(args.dream_layer or ()),
        dream_weight=args.dream_weight,
        vgg_weights=_vgg_weights(args),
    )
    name = f"{cfg.content.stem}_{'+'.join(s.stem for s in cfg.styles)}"
    result = stylize(cfg, _engine(args, name))
    out = Path(args.out)
    path = _write(out, name, result.image)
    _sheet(out, name, [result.content, *result.styles, result.image])
    _report(name, result.optim)
    log.info("wrote %s and %s_sheet.png", path, name)


def cmd_texture(args: argparse.Namespace) -> None:
    if args.method != "gram":
        _pixel_texture(args)
        return
    sets = tuple(growing(args.layers)) if not args.single else (tuple(args.layers),)
    cfg = TextureConfig(
        texture=Path(args.texture),
        size=args.size,
        source_size=args.source_size or args.size,
        layer_sets=sets,
        vgg_weights=_vgg_weights(args),
    )
    name, out = f"texture_{cfg.texture.stem}", Path(args.out)

    def save(layers: str, result: OptimResult) -> None:
        _write(out, f"{name}_{layers}", result.image)
        _report(layers, result)

    source, results = synthesize(cfg, _engine(args, name), on_result=save)
    _sheet(out, name, [source, *(r.image for r in results)], cell=min(256, max(128, cfg.size)))
    log.info("wrote %d textures and %s_sheet.png to %s", len(results), name, out)


def _pixel_texture(args: argparse.Namespace) -> None:
    """Efros-Leung or Wei-Levoy: SIZE x SIZE copied from the sample's pixels, with progress; PNG into OUT."""
    sample = np.asarray(open_rgb(Path(args.texture)))
    if args.source_size:  # the shorter side becomes SOURCE_SIZE
        scale = args.source_size / min(sample.shape[:2])
        size = (max(1, round(sample.shape[1] * scale)), max(1, round(sample.shape[0] * scale)))
        sample = np.asarray(Image.fromarray(sample).resize(size, Image.Resampling.LANCZOS))
    window = args.window or (11 if args.method == "efros-leung" else 7)
    cfg = PixelTextureConfig(size=args.size, window=window, levels=args.levels, seed=args.seed or 0)
    cfg.check(sample)  # a bad size or too small a sample: one line, before the progress bar
    with tqdm(total=args.size * args.size, desc=args.method, unit="px") as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        started = time.perf_counter()
        result = synthesize_pixels(args.method, sample, cfg, progress)
    name = f"texture_{Path(args.texture).stem}_{args.method}"
    path = Path(args.out) / f"{name}.png"
    save_png(Image.fromarray(result), path)
    log.info(
        "wrote %s (%dx%d from a %dx%d sample in %.1f s)",
        path,
        args.size,
        args.size,
        sample.shape[1],
        sample.shape[0],
        time.perf_counter() - started,
    )


def cmd_invert(args: argparse.Namespace) -> None:
    cfg = InvertConfig(
        image=Path(args.image), size=args.size, layers=tuple(args.layers), vgg_weights=_vgg_weights(args)
    )
    name, out = f"invert_{cfg.image.stem}", Path(args.out)

    def save(layer: str, result: OptimResult) -> None:
        _write(out, f"{name}_{layer}", result.image)
        _report(layer, result)

    photo, results = invert(cfg, _engine(args, name), on_result=save)
    _sheet(out, name, [photo, *(r.image for r in results)])
    log.info("wrote %d inversions and %s_sheet.png to %s", len(results), name, out)


def cmd_dream(args: argparse.Namespace) -> None:
    cfg = DreamConfig(
        image=Path(args.image) if args.image else None,
        layers=tuple(args.layers),
        size=args.size,
        vgg_weights=_vgg_weights(args),
    )
    name = f"dream_{cfg.image.stem if cfg.image else 'noise'}_{'+'.join(cfg.layers)}"
    start, result = dream(cfg, _engine(args, name))
    out = Path(args.out)
    path = _write(out, name, result.image)
    _sheet(out, name, [start, result.image], cell=384)
    _report(name, result)
    log.info("wrote %s and %s_sheet.png", path, name)


def cmd_quality(args: argparse.Namespace) -> None:
    scorer = QualityScorer(device=args.device)
    rows = {
        label: scorer.score_files(Path(path), Path(args.content), Path(args.style))
        for label, path in (("fast", args.fast), ("gatys", args.gatys))
    }
    print(f"{'':8}{'style loss':>14}{'content loss':>14}")
    for label, s in rows.items():
        print(f"{label:8}{s.style:>14.4g}{s.content:>14.4g}")
    fast, gatys = rows["fast"], rows["gatys"]
    ratios = fast.style / max(gatys.style, 1e-12), fast.content / max(gatys.content, 1e-12)
    print(f"{'fast/gatys':8}{ratios[0]:>13.2f}x{ratios[1]:>13.2f}x")


def _subcommand(sub: argparse._SubParsersAction, name: str, help: str) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help, description=help, formatter_class=SHOW_DEFAULTS)
    return parser


def _add_invert_dream_quality(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``invert``, ``dream`` and ``quality``: the tools that read what a network sees."""

    p = _subcommand(sub, "invert", "reconstruct an image from one layer's features, per layer")
    p.add_argument("--image", required=True)
    p.add_argument("--size", type=int, default=256, help="shorter side")
    p.add_argument("--layers", nargs="+", default=list(INVERT_TAPS))
    _engine_flags(p, iterations=[150], tv_weight=0.5)
    p.set_defaults(func=cmd_invert)

    p = _subcommand(sub, "dream", "DeepDream: amplify what a layer sees")
    p.add_argument("--image", help="start image (default: grey noise)")
    p.add_argument("--size", type=int, default=512, help="shorter side")
    p.add_argument("--layers", nargs="+", default=list(DREAM_TAPS))
    _engine_flags(
        p,
        iterations=[10],
        optimizer="sgd",
        lr=0.006,
        jitter=32,
        normalize_grad=True,
        octaves=4,
        octave_scale=1.4,
        carry="detail",
    )
    p.set_defaults(func=cmd_dream)

    p = _subcommand(sub, "quality", "style and content loss of a fast output and a Gatys result")
    p.add_argument("--fast", required=True, help="the fast network's output for CONTENT in STYLE")
    p.add_argument("--gatys", required=True, help="the Gatys result for the same content and style")
    p.add_argument("--content", required=True, help="the content photo")
    p.add_argument("--style", required=True, help="the style painting")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_quality)


def add_subcommands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add gatys, texture, invert, dream and quality to ``livestyle-train``."""
    p = _subcommand(sub, "gatys", "style transfer by optimisation (Gatys et al. 2016)")
    p.add_argument("--content", required=True, help="content photo")
    p.add_argument("--styles", nargs="+", required=True, help="one or more style images")
    p.add_argument("--blend", type=float, nargs="+", help="one weight per style (default: equal)")
    p.add_argument("--size", type=int, default=512, help="shorter side of the result")
    p.add_argument("--square", action="store_true", help="centre-crop the content to SIZE x SIZE")
    p.add_argument("--style-scale", type=float, default=1.0, help="style image size relative to the result")
    p.add_argument("--content-weight", type=float, default=1.0)
    p.add_argument("--style-weight", type=float, default=1e-4)
    p.add_argument("--content-layers", nargs="+", default=[CONTENT_TAP])
    p.add_argument("--style-layers", nargs="+", default=list(STYLE_TAPS))
    p.add_argument("--init", choices=["content", "noise"], default="content")
    p.add_argument(
        "--colour",
        choices=["none", "luminance", "match"],
        default="none",
        help="preserve the photo's colours: luminance-only transfer or colour matching",
    )
    p.add_argument("--dream-layer", nargs="+", help="also DeepDream these layers")
    p.add_argument("--dream-weight", type=float, default=0.0)
    _engine_flags(p, iterations=[100, 30], octaves=2)
    p.set_defaults(func=cmd_gatys)

    p = _subcommand(sub, "texture", "texture synthesis: Gram matching (growing layer sets) or on raw pixels")
    p.add_argument(
        "--method",
        choices=["gram", *PIXEL_METHODS],
        default="gram",
        help="gram: Gatys et al. 2015 on VGG19; efros-leung (1999) and wei-levoy (2000): pixels copied "
        "from the sample, no network",
    )
    p.add_argument("--window", type=int, help="pixel methods: neighbourhood side (efros-leung 11, wei-levoy 7)")
    p.add_argument("--levels", type=int, default=2, help="wei-levoy: Gaussian pyramid levels")
    p.add_argument("--texture", required=True, help="texture (or painting) image")
    p.add_argument("--size", type=int, default=256, help="the result is SIZE x SIZE")
    p.add_argument("--source-size", type=int, help="texture image's shorter side (default: SIZE)")
    p.add_argument("--layers", nargs="+", default=list(STYLE_TAPS), help="grown one at a time")
    p.add_argument("--single", action="store_true", help="only the full layer set, no growing grid")
    _engine_flags(p, iterations=[100])
    p.set_defaults(func=cmd_texture)
    _add_invert_dream_quality(sub)
