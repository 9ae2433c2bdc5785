"""``livestyle-train classify|segment|report``: the interpretability tools' flags, read here and nowhere else."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("livestyle.interpret")


def _optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None


def cmd_classify(args: argparse.Namespace) -> None:
    from training.classifier import classifier_input, load_classifier, top_k

    image = classifier_input(Path(args.image))  # a bad picture fails before the weights load
    model = load_classifier(_optional_path(args.classifier_weights))
    predictions = [
        {"index": p.index, "label": p.label, "probability": round(p.probability, 4)}
        for p in top_k(model, image, args.top)
    ]
    print(json.dumps(predictions, indent=2))
    sys.stdout.flush()


def cmd_segment(args: argparse.Namespace) -> None:
    from PIL import Image

    from training.classifier import imagenet_classes, load_classifier
    from training.images import save_png
    from training.interpret.segment import SegmentConfig, cutout, load_photo, segment

    cfg = SegmentConfig(
        foreground_quantile=args.foreground_quantile,
        background_quantile=args.background_quantile,
        iterations=args.iterations,
    )
    if args.target is not None and not 0 <= args.target < len(imagenet_classes()):
        raise ValueError(f"--target must be an ImageNet class index 0..999, got {args.target}")
    photo = Path(args.photo)
    rgb = load_photo(photo)  # a bad picture fails before the weights load
    found = segment(load_classifier(_optional_path(args.classifier_weights)).eval(), rgb, cfg, args.target)
    out = Path(args.out)
    save_png(Image.fromarray((found.mask * 255).astype("uint8")), out / f"{photo.stem}_mask.png")
    save_png(cutout(rgb, found.mask), out / f"{photo.stem}_cutout.png")
    save_png(Image.fromarray((found.saliency * 255).astype("uint8")), out / f"{photo.stem}_saliency.png")
    log.info(
        "class %d (%s): %.0f%% of the photo kept; wrote %s_{mask,cutout,saliency}.png to %s",
        found.target,
        imagenet_classes()[found.target].label,
        100 * found.mask.mean(),
        photo.stem,
        out,
    )


DEFAULT_CHECKPOINTS = (Path("models/checkpoints/realtime.pt"), Path("runs/realtime/checkpoint.pt"))


def _checkpoint(value: str | None) -> Path | None:
    if value:
        return Path(value)
    return next((p for p in DEFAULT_CHECKPOINTS if p.is_file()), None)


def cmd_report(args: argparse.Namespace) -> None:
    import torch

    from training.interpret.report import ReportConfig, write_report

    if args.threads:
        torch.set_num_threads(args.threads)
    photos = args.photos or (Path(os.environ["LIVESTYLE_DATA"]) / "photos" if "LIVESTYLE_DATA" in os.environ else None)
    cfg = ReportConfig(
        out=Path(args.out),
        photos=_optional_path(str(photos) if photos else None),
        max_photos=args.max_photos,
        checkpoint=_checkpoint(args.checkpoint),
        classifier_weights=_optional_path(args.classifier_weights),
        vgg_weights=_optional_path(args.vgg_weights),
        iterations=args.iterations,
        scenes=args.scenes,
        seed=args.seed,
        progress=not args.quiet,
    )
    path = write_report(cfg)
    log.info("wrote %s", path)


def add_subcommands(sub: Any) -> None:
    """Add ``classify`` and ``report`` to livestyle-train's subcommands."""
    p = sub.add_parser("classify", help="top-5 ImageNet classes of a picture as JSON (EfficientNet-Lite0)")
    p.add_argument("image")
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--classifier-weights", help="EfficientNet-Lite0 state_dict instead of the bundled weights")
    p.set_defaults(func=cmd_classify)
    p = sub.add_parser(
        "segment", help="cut the object out of a photo: classifier saliency seeds GrabCut (no segmentation labels)"
    )
    p.add_argument("photo")
    p.add_argument("--out", required=True, help="folder for <photo>_mask.png, _cutout.png (RGBA), _saliency.png")
    p.add_argument("--target", type=int, help="ImageNet class index to follow (default: the top-1 class)")
    p.add_argument("--foreground-quantile", type=float, default=0.95, help="saliency above it: sure foreground")
    p.add_argument("--background-quantile", type=float, default=0.30, help="saliency below it: sure background")
    p.add_argument("--iterations", type=int, default=5, help="GrabCut rounds")
    p.add_argument("--classifier-weights", help="EfficientNet-Lite0 state_dict instead of the bundled weights")
    p.set_defaults(func=cmd_segment)
    p = sub.add_parser("report", help="HTML report: interpretability figures for the classifier, VGG and style nets")
    p.add_argument("--out", required=True, help="folder for index.html and its figures")
    p.add_argument("--photos", help="folder with imagenet_<wnid>_<label>.jpg photos (default: $LIVESTYLE_DATA/photos)")
    p.add_argument("--max-photos", type=int, default=200, help="photos used for accuracy, neighbours, maps, patches")
    p.add_argument(
        "--checkpoint",
        help="style network checkpoint (default: models/checkpoints/realtime.pt, then runs/realtime/checkpoint.pt)",
    )
    p.add_argument("--classifier-weights", help="EfficientNet-Lite0 state_dict instead of the bundled weights")
    p.add_argument("--vgg-weights", help="torchvision VGG19 state_dict instead of the bundled weights")
    p.add_argument("--iterations", type=int, default=100, help="steps for class visualization and inversion")
    p.add_argument("--scenes", type=int, default=24, help="composed scenes with known masks scoring segmentation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_report)
