"""Export a trained checkpoint to ONNX under the service's contract and record it in the manifest.

The exported graph is checked before it is kept: names, ranks and dynamic sizes must match
``service/contract.py`` and ONNX Runtime must agree with PyTorch within 1e-4 at two sizes for a
one-hot and a blended weight vector. A graph that fails is deleted, never written to the manifest.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from service import contract
from training.checkpoint import build_from_checkpoint, load_checkpoint
from training.features import load_vgg
from training.images import load_image
from training.losses import log_activation_gain
from training.networks import StyleNet, memory_input
from training.paintings import credits_for

log = logging.getLogger(__name__)
PARITY_TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """The exported graph disagrees with the contract or with PyTorch."""


def _dims(value_info: onnx.ValueInfoProto) -> tuple[Any, ...]:
    return tuple(d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim)


def check_graph(path: Path, num_styles: int, memory: bool = False) -> None:
    """Names, ranks, style count and dynamic H/W against the contract (``memory``: with a memory input)."""
    graph = onnx.load(str(path)).graph
    inputs = {i.name: _dims(i) for i in graph.input}
    outputs = {o.name: _dims(o) for o in graph.output}
    try:
        contract.check_io(inputs, outputs, num_styles, memory)
    except contract.ContractError as exc:
        raise ExportError(f"{path}: {exc}") from exc
    if any(isinstance(d, int) for d in inputs[contract.INPUT_FRAME][2:]):
        raise ExportError(f"{path}: frame height/width must be dynamic, graph says {inputs[contract.INPUT_FRAME]}")


def _random_memory(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A memory of a random painting and trust, laid out as every memory is (``memory_input``)."""
    rgb, trust = (torch.from_numpy(rng.random((1, c, h, w), dtype=np.float32)) for c in (3, 1))
    return memory_input(rgb, trust).numpy()


def check_parity(
    net: StyleNet, path: Path, sizes: tuple[tuple[int, int], ...] = ((64, 96), (136, 200)), memory: bool = False
) -> float:
    """Largest |ORT - PyTorch| over two sizes and two weight vectors (``memory``: a random one fed to both);
    raises above tolerance."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    s, m = net.config.num_styles, net.config.size_multiple
    blend = np.full((1, s), 1.0 / s, dtype=np.float32)
    worst = 0.0
    rng = np.random.default_rng(0)
    for h, w in sizes:
        frame = rng.random((1, 3, h - h % m, w - w % m), dtype=np.float32)
        held = _random_memory(rng, *frame.shape[2:]) if memory else None
        for weights in (contract.one_hot(s - 1, s), blend):
            feeds = {contract.INPUT_FRAME: frame, contract.INPUT_WEIGHTS: weights}
            if held is not None:
                feeds[contract.INPUT_MEMORY] = held
            (onnx_out,) = session.run(None, feeds)
            with torch.no_grad():
                extra = torch.from_numpy(held) if held is not None else None
                torch_out = net(torch.from_numpy(frame), torch.from_numpy(weights), extra).numpy()
            worst = max(worst, float(np.abs(onnx_out - torch_out).max()))
    if worst > PARITY_TOLERANCE:
        raise ExportError(f"{path}: ONNX Runtime differs from PyTorch by {worst:.2e} (> {PARITY_TOLERANCE})")
    return worst


def export_network(net: StyleNet, path: Path, memory: bool = False) -> float:
    """Write ``net`` as a contract graph at ``path`` (atomically); returns the parity error. ``memory``: with the
    memory input (a memory network's; the service loads only graphs without one), else painting without one."""
    net = net.eval()
    if memory and not net.config.memory:
        raise ExportError("a memory input needs a network with a memory (NetConfig.memory)")
    s, m = net.config.num_styles, net.config.size_multiple
    h, w = 4 * m, 6 * m
    example: tuple[torch.Tensor, ...] = (torch.rand(1, 3, h, w), torch.full((1, s), 1.0 / s))
    names = [contract.INPUT_FRAME, contract.INPUT_WEIGHTS]
    sized: dict[str, Any] = {
        "dynamic_axes": {n: {2: "height", 3: "width"} for n in (names[0], contract.OUTPUT_STYLIZED)}
    }
    if memory:  # the exporter cannot pair named axes with a third input: it infers the sizes instead
        example += (torch.from_numpy(_random_memory(np.random.default_rng(0), h, w)),)
        names.append(contract.INPUT_MEMORY)
        hw = {2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO}
        sized = {"dynamic_shapes": (hw, None, hw)}
    tmp = path.with_name(path.stem + ".tmp.onnx")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                example,
                str(tmp),
                dynamo=True,
                opset_version=contract.OPSET,
                external_data=False,
                input_names=names,
                output_names=[contract.OUTPUT_STYLIZED],
                **sized,
            )
        check_graph(tmp, s, memory)
        error = check_parity(net, tmp, memory=memory)
        tmp.replace(path)
        return error
    finally:
        tmp.unlink(missing_ok=True)
        Path(str(tmp) + ".data").unlink(missing_ok=True)


THUMBNAIL_SIDE = 160


def write_thumbnails(style_images: list[Path], folder: Path) -> list[str]:
    """A small JPEG of each style painting (``<style>.jpg``) for the service's gallery; returns the names."""
    from training.images import center_crop, open_rgb, resize_short_side

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for path in style_images:
        if not path.is_file():
            continue
        thumb = center_crop(resize_short_side(open_rgb(path), THUMBNAIL_SIDE), THUMBNAIL_SIDE)
        target = folder / f"{path.stem}.jpg"
        tmp = folder / f"{path.stem}.tmp.jpg"
        thumb.save(tmp, format="JPEG", quality=85)
        tmp.replace(target)
        written.append(path.stem)
    return written


def dream_gains(
    net: StyleNet, styles: list[str], photos: list[Path], vgg_weights: Path | None = None
) -> dict[str, dict[str, Any]]:
    """For each dream style: its layer and the geometric-mean factor by which it raises that layer's
    mean squared activation over the photos (the figure tests and the service show)."""
    dreams = {s: s[len(contract.DREAM_PREFIX) :] for s in styles if s.startswith(contract.DREAM_PREFIX)}
    if not dreams:
        return {}
    found = [Path(p) for p in photos if Path(p).is_file()]
    if not found:
        raise ValueError(
            f"this checkpoint has dream styles ({', '.join(dreams)}): name held-out photos to "
            "measure their gain on (--measure-on PHOTO ...)"
        )
    pictures = [load_image(p, short_side=256) for p in found]
    vgg = load_vgg(tuple(dict.fromkeys(dreams.values())), vgg_weights)
    out: dict[str, dict[str, Any]] = {}
    net = net.eval()
    with torch.no_grad():
        for style, layer in dreams.items():
            entry: dict[str, Any] = {"layer": layer}
            weights = torch.nn.functional.one_hot(torch.tensor([styles.index(style)]), len(styles)).float()
            logs = [
                float(log_activation_gain(vgg(net.stylize_any_size(p, weights))[layer], vgg(p)[layer]).mean())
                for p in pictures
            ]
            entry["gain"] = round(float(np.exp(np.mean(logs))), 3)
            entry["measured_on"] = [p.name for p in found]
            out[style] = entry
    return out


def _install(models_dir: Path, entry: contract.ModelEntry, ckpt: dict[str, Any]) -> None:
    """The entry into the manifest (replacing one of its name, tiers in order) and the weights-only checkpoint
    (no optimizer or random state: what ``--resume-from`` starts from) beside the models, written whole."""
    manifest = models_dir / contract.MANIFEST_NAME
    entries = contract.read_manifest(manifest) if manifest.exists() else []
    entries = [e for e in entries if e.name != entry.name] + [entry]
    entries.sort(key=lambda e: contract.TIERS.index(e.tier))
    contract.write_manifest(manifest, entries)
    release = {k: v for k, v in ckpt.items() if k not in ("optimizer", "rng")}
    release_path = models_dir / "checkpoints" / f"{entry.name}.pt"
    release_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(release, release_path.with_name(release_path.name + ".tmp"))
    release_path.with_name(release_path.name + ".tmp").replace(release_path)
    log.info("weights-only checkpoint (resume with --resume-from) in %s", release_path)


def export_checkpoint(
    checkpoint: Path,
    models_dir: Path,
    name: str | None = None,
    tier: str | None = None,
    measure_on: tuple[Path, ...] = (),
) -> contract.ModelEntry:
    """Export a checkpoint to ``models_dir/<name>.onnx`` and add or replace its manifest entry.

    Dream styles are measured on ``measure_on`` (default: the run's preview photos, which are held out)."""
    ckpt = load_checkpoint(checkpoint)
    net, styles = build_from_checkpoint(ckpt)
    train_cfg = ckpt.get("train_config", {})
    tier = tier or train_cfg.get("tier")
    if tier not in contract.TIERS:
        raise ValueError(f"say which tier this checkpoint is (--tier {'|'.join(contract.TIERS)})")
    name = name or tier
    dreams = dream_gains(
        net,
        styles,
        list(measure_on) or [Path(p) for p in train_cfg.get("preview_images", [])],
        Path(train_cfg["vgg_weights"]) if train_cfg.get("vgg_weights") else None,
    )
    models_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = models_dir / f"{name}.onnx"
    parity = export_network(net, onnx_path)
    log.info("exported %s: parity with PyTorch %.1e", onnx_path, parity)
    if net.config.memory:  # the service feeds no memory: the graph is the network with an empty one
        log.warning("%s: exported without its memory input, which the service does not feed", onnx_path)
    entry = contract.ModelEntry(
        name=name,
        file=onnx_path.name,
        sha256=contract.sha256_file(onnx_path),
        tier=tier,
        styles=tuple(styles),
        size_multiple=net.config.size_multiple,
        config=net.config.to_json(),
        training={
            "steps": int(ckpt["step"]),
            "final_losses": ckpt.get("metrics", {}),
            "settings": {
                k: v
                for k, v in train_cfg.items()
                if k not in ("content_dir", "style_images", "out_dir", "resume", "preview_images")
            },
        },
        credits=tuple(credits_for(styles)),
        dreams=dreams,
    )
    _install(models_dir, entry, ckpt)
    made = write_thumbnails([Path(p) for p in train_cfg.get("style_images", [])], models_dir / "thumbnails")
    if made:
        log.info("gallery thumbnails for %s in %s", ", ".join(made), models_dir / "thumbnails")
    return entry
