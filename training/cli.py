"""``livestyle-train``: the training side's one entry point (flags are read here and nowhere else)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from training.carry import FLOWS
from training.checkpoint import CheckpointError
from training.features import FeatureWeightsError
from training.images import ImageInputError, list_images
from training.interpret import cli as interpret_cli
from training.loop import PRECISIONS
from training.optimize.cli import add_subcommands
from training.train import TrainConfig, Trainer

log = logging.getLogger("livestyle.train")
USER_ERRORS = (ImageInputError, FeatureWeightsError, CheckpointError, ValueError, FileNotFoundError)


def _style_paths(args: argparse.Namespace) -> tuple[Path, ...]:
    paths: list[Path] = []
    for item in args.styles:
        p = Path(item)
        paths += list_images(p) if p.is_dir() else [p]
    for p in paths:
        if not p.is_file():
            raise ImageInputError(f"{p}: style image not found")
    if not paths and not args.dream:
        raise ValueError("zero styles given (--styles and/or --dream)")
    return tuple(paths)


def scale_pair(text: str) -> tuple[int, int]:
    """``SCENE:STYLE`` (e.g. ``256:256``) as two short sides in pixels."""
    scene, sep, style = text.partition(":")
    if not (sep and scene.isdigit() and style.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r}: give SCENE:STYLE, two sizes in pixels (e.g. 256:256)")
    return int(scene), int(style)


def _run_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The flags every run shares, as :class:`training.run.RunConfig` fields: the one mapping of them."""
    return dict(
        content_dir=Path(args.content),
        out_dir=Path(args.out),
        tier=args.tier,
        steps=args.steps,
        batch_size=args.batch_size,
        crop_size=args.crop_size,
        scene_size=args.scene_size,
        lr=args.lr,
        norm_lr_scale=args.norm_lr_scale,
        exclude=tuple(args.exclude),
        checkpoint_every=args.checkpoint_every,
        preview_every=args.preview_every,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        vgg_weights=Path(args.vgg_weights) if args.vgg_weights else None,
        minutes=args.minutes,
        precision=args.precision,
        preview_images=tuple(Path(p) for p in args.preview),
        init_from=Path(args.init_from) if getattr(args, "init_from", None) else None,
    )


def _train_config(args: argparse.Namespace, new_styles_only: bool) -> TrainConfig:
    own = Path(args.out) / "checkpoint.pt"
    resume = Path(args.checkpoint) if new_styles_only else (own if args.resume and own.exists() else None)
    if args.resume_from and resume is None:  # --resume prefers the run's own checkpoint when it has one
        resume = Path(args.resume_from)
    return TrainConfig(
        **_run_fields(args),
        style_images=_style_paths(args),
        content_weight=args.content_weight,
        style_weight=args.style_weight,
        tv_weight=args.tv_weight,
        grid_weight=args.grid_weight,
        grid_periods=args.grid_periods,
        shift_weight=args.shift_weight,
        motion_weight=args.motion_weight,
        motion_bend=args.motion_bend,
        motion_feature_weight=args.motion_feature_weight,
        motion_relative=args.motion_relative,
        memory_weight=args.memory_weight,
        memory_chain=args.memory_chain,
        memory_warmup=args.memory_warmup,
        memory_slack=args.memory_slack,
        memory_flow_error=args.memory_flow_error,
        memory_flow=args.memory_flow,
        memory_gate=args.memory_gate,
        dream_layers=tuple(args.dream),
        dream_weights=tuple(args.dream_weight),
        style_size=args.style_size,
        also_at=tuple(getattr(args, "also_at", ())),
        resume=resume,
        new_styles_only=new_styles_only,
        only_styles=tuple(getattr(args, "only_styles", ())),
    )


def _distributed(device: str) -> tuple[int, int, str]:
    """Under torchrun (WORLD_SIZE > 1): join the process group; returns rank, world size, device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    import torch.distributed as dist

    dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    if device.startswith("cuda"):
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    return dist.get_rank(), world, device


def _train(args: argparse.Namespace, new_styles_only: bool) -> None:
    rank, world, args.device = _distributed(args.device)
    metrics = Trainer(_train_config(args, new_styles_only), rank, world).run()
    if rank == 0:
        log.info("done: %s", {k: f"{v:.4g}" for k, v in metrics.items()})


def cmd_train(args: argparse.Namespace) -> None:
    _train(args, new_styles_only=False)


def cmd_add_style(args: argparse.Namespace) -> None:
    _train(args, new_styles_only=True)


def cmd_distill(args: argparse.Namespace) -> None:
    from training.distill import DistillConfig, Distiller

    cfg = DistillConfig(
        **_run_fields(args),
        teachers=tuple(Path(t) for t in args.teacher),
        pixel_weight=args.pixel_weight,
        feature_weight=args.feature_weight,
        feature_tap=args.feature_layer,
        blend_fraction=args.blend_fraction,
        resume=args.resume,
    )
    metrics = Distiller(cfg).run()
    log.info("done: %s", {k: f"{v:.4g}" for k, v in metrics.items()})


def cmd_export(args: argparse.Namespace) -> None:
    from training.export import export_checkpoint

    entry = export_checkpoint(
        Path(args.checkpoint),
        Path(args.models_dir),
        name=args.name,
        tier=args.tier,
        measure_on=tuple(Path(p) for p in args.measure_on),
    )
    log.info("wrote %s (%s, styles %s)", Path(args.models_dir) / entry.file, entry.tier, ", ".join(entry.styles))


def cmd_sheet(args: argparse.Namespace) -> None:
    from training.sheet import write_contact_sheet

    write_contact_sheet(Path(args.models_dir), args.model, [Path(p) for p in args.photos], Path(args.out), args.size)
    log.info("wrote %s", args.out)


def _add_run_flags(p: argparse.ArgumentParser, steps: int, batch_size: int, lr: float) -> None:
    """Flags every optimisation run shares (train, add-style, distill): training.run.RunConfig's fields."""
    p.add_argument("--content", required=True, help="folder of content photos")
    p.add_argument("--out", required=True, help="run folder: checkpoint.pt, log.csv, preview.png")
    p.add_argument("--steps", type=int, default=steps, help="total steps (resume continues to this)")
    p.add_argument("--minutes", type=float, default=0.0, help="stop and save after this much training time (0: off)")
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--crop-size", type=int, default=128)
    p.add_argument(
        "--scene-size",
        type=int,
        default=0,
        help="scale photos to this short side before cropping (480: strokes sized for a 640x480 frame, "
        "with --style-size 480 when training); 0: by the crop size",
    )
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--norm-lr-scale", type=float, default=10.0, help="lr multiplier of the per-style norms")
    p.add_argument("--exclude", nargs="*", default=[], help="globs of content files to hold out")
    p.add_argument("--preview", nargs="*", default=[], help="photos for the preview grid")
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--preview-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="bf16-loss: VGG19 in bfloat16; bf16: the style net too (about 2x faster on CPUs with AMX "
        "or AVX512-BF16, e.g. lscpu shows amx_bf16; slower on others)",
    )
    p.add_argument("--vgg-weights", help="torchvision VGG19 state_dict instead of the bundled weights")


def _add_penalty_flags(p: argparse.ArgumentParser) -> None:
    """The penalties beside the perceptual losses: mesh, stride-grid shift, camera motion."""
    p.add_argument(
        "--grid-weight",
        type=float,
        default=0.0,
        help="weight of the mesh penalty (spikes at 2- and 4-pixel periods in the output's spectrum)",
    )
    p.add_argument(
        "--grid-periods",
        type=int,
        choices=(4, 8),
        default=4,
        help="the longest mesh period the penalty looks at: 4, or 8 for an encoder striding by 8",
    )
    p.add_argument(
        "--shift-weight",
        type=float,
        default=0.0,
        help="weight of the shift penalty (a frame moved 1-7 px must give the output moved): "
        "removes patterns locked to the stride grid",
    )
    p.add_argument(
        "--motion-weight",
        type=float,
        default=0.0,
        help="weight of the camera-motion penalty (a frame moved, turned and zoomed a little, as a "
        "hand-held camera's next one, must give the output warped the same): strokes that "
        "follow the camera, which stabilization keeps",
    )
    p.add_argument(
        "--motion-bend",
        type=float,
        default=0.0,
        metavar="PX",
        help="add a smooth non-rigid displacement of up to PX pixels to each camera move (a real camera's "
        "flow bends: parallax, moving subjects); 0: rigid moves",
    )
    p.add_argument(
        "--motion-feature-weight",
        type=float,
        default=0.0,
        help="weight of the camera-motion penalty on the features the decoder starts from (relative to their "
        "mean square): steadiness that cannot come from painting less",
    )
    p.add_argument(
        "--motion-relative",
        action="store_true",
        help="the output's camera-motion penalty relative to the output's variance, so that painting with less "
        "contrast does not pass it (the style loss alone sets how strongly to paint)",
    )


def _add_memory_flags(p: argparse.ArgumentParser) -> None:
    """A network with a memory (the last painting carried along the flow as a second input), trained on chains."""
    p.add_argument(
        "--memory-weight",
        type=float,
        default=0.0,
        help="train a network with a memory (added to one grown with --init-from): each step's frames move on "
        "as a hand-held camera's and are painted again with the last painting carried along the flow, held to it "
        "where trusted with this weight",
    )
    p.add_argument("--memory-chain", type=int, default=2, help="frames in a row per chain (the first one without)")
    p.add_argument(
        "--memory-warmup",
        type=int,
        default=0,
        metavar="N",
        help="carry each chain's memory N frames further first, without learning from them, so that it has drifted "
        "as a clip's would (each painting is held to the chain's first, carried along the true moves)",
    )
    p.add_argument(
        "--memory-slack",
        type=int,
        default=0,
        metavar="PX",
        help="hold each pixel to the nearest of the carried painting's pixels within PX (0-3), so that a stroke a "
        "real flow put a pixel off is copied, not blurred with its neighbours",
    )
    p.add_argument(
        "--memory-flow-error",
        type=float,
        default=1.0,
        metavar="PX",
        help="the memory is carried along a flow up to PX pixels wrong, as a real flow is",
    )
    p.add_argument(
        "--memory-flow",
        choices=FLOWS,
        default="noisy",
        help="noisy: the memory is carried along the true move bent by --memory-flow-error; stabilizer: along the "
        "service's Steady flow estimated on the frames and trusted where it trusts it, with its real errors",
    )
    p.add_argument(
        "--memory-gate",
        action="store_true",
        help="a fresh memory network also blends the carried painting into its output at full size, by a gate it "
        "paints (through the decoder alone the memory arrives pooled, without its finest strokes)",
    )


def _add_training_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--styles", nargs="*", default=[], help="style images or folders of them")
    p.add_argument(
        "--dream",
        nargs="*",
        default=[],
        metavar="LAYER",
        help="dream styles: amplify these VGG19 layers (e.g. relu3_3 relu5_2), named dream_<layer>",
    )
    p.add_argument(
        "--dream-weight",
        type=float,
        nargs="+",
        default=[3e5],
        help="weight of a dream's log activation gain: one for all, or one per --dream layer",
    )
    p.add_argument("--content-weight", type=float, default=1.0)
    p.add_argument("--style-weight", type=float, default=3e-6)
    p.add_argument("--tv-weight", type=float, default=1e2)
    _add_penalty_flags(p)
    _add_memory_flags(p)
    p.add_argument("--style-size", type=int, default=256, help="style image short side (brush size)")
    p.add_argument(
        "--also-at",
        nargs="+",
        default=[],
        metavar="SCENE:STYLE",
        type=scale_pair,
        help="more scales, taken in turn with --scene-size/--style-size, one per step: photos at "
        "SCENE px short side, paintings at STYLE (e.g. 256:256 beside 480:480 keeps strokes "
        "right for 256 px stills as well as 640x480 frames)",
    )
    _add_run_flags(p, steps=4000, batch_size=4, lr=1e-3)
    p.add_argument("--resume-from", help="checkpoint to start from (with --resume: only while OUT has none)")


def _add_distill_and_export(sub: Any) -> None:
    """``distill`` (a cheaper network taught a trained one's styles) and ``export`` (a checkpoint to ONNX)."""
    p = sub.add_parser("distill", help="teach a cheaper network (the tier's current design) a trained one's styles")
    p.add_argument(
        "--teacher",
        required=True,
        nargs="+",
        help="trained checkpoint(s) whose styles and blends to copy; each style from the first that has "
        "it (e.g. the quality tier's paintings, then a realtime checkpoint's dream styles)",
    )
    p.add_argument("--tier", choices=["realtime", "quality"], default="realtime", help="student design")
    p.add_argument("--pixel-weight", type=float, default=1.0, help="weight of the L1 RGB difference")
    p.add_argument("--feature-weight", type=float, default=0.5, help="weight of the relative VGG19 feature error")
    p.add_argument("--feature-layer", default="relu2_2", help="VGG19 layer of the feature term")
    p.add_argument("--blend-fraction", type=float, default=0.3, help="share of items given a two-style mix")
    _add_run_flags(p, steps=3000, batch_size=8, lr=2e-3)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if present")
    p.add_argument(
        "--init-from", help="start the student with every tensor of this checkpoint that fits (default: the teacher's)"
    )
    p.set_defaults(func=cmd_distill)
    p = sub.add_parser("export", help="export a checkpoint to ONNX and update the manifest")
    p.add_argument("checkpoint")
    p.add_argument("--models-dir", default="models")
    p.add_argument("--name", help="model name in the manifest (default: the tier)")
    p.add_argument("--tier", choices=["realtime", "quality"], help="default: from the checkpoint")
    p.add_argument(
        "--measure-on",
        nargs="+",
        default=[],
        metavar="PHOTO",
        help="held-out photos to measure each dream style's gain on (default: the run's previews)",
    )
    p.set_defaults(func=cmd_export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livestyle-train", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a multi-style network")
    _add_training_flags(p)
    p.add_argument("--tier", choices=["realtime", "quality"], default="realtime")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if present")
    p.add_argument(
        "--init-from",
        help="start a fresh network of the tier's design with every tensor of this "
        "checkpoint that fits (a new decoder keeps the trained encoder and norms)",
    )
    p.add_argument(
        "--only-styles",
        nargs="+",
        default=[],
        metavar="STYLE",
        help="with --resume-from: retrain only these styles' norms (the rest of the model is frozen)",
    )
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("add-style", help="add styles to a trained checkpoint (only their norms learn)")
    _add_training_flags(p)
    p.add_argument("--checkpoint", required=True, help="trained checkpoint to extend")
    p.set_defaults(func=cmd_add_style, tier="added", resume=False)
    _add_distill_and_export(sub)
    p = sub.add_parser("sheet", help="contact sheet of a shipped model: every style and blends on photos")
    p.add_argument("--models-dir", default="models")
    p.add_argument("--model", default="realtime")
    p.add_argument("--photos", nargs="+", required=True, help="photos not used in training")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_sheet)
    add_subcommands(sub)
    interpret_cli.add_subcommands(sub)
    return parser


def run(argv: Sequence[str] | None, commands: Callable[[], argparse.ArgumentParser] = build_parser) -> int:
    args = commands().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        args.func(args)
    except USER_ERRORS as exc:
        print(f"livestyle-train: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("livestyle-train: interrupted", file=sys.stderr)
        return 130
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run(argv))


if __name__ == "__main__":
    main()
