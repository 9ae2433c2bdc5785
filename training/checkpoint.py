"""Checkpoints: one file holds the architecture (NetConfig), the style names, the weights, the step, the run's
settings and the optimizer; written atomically, read with ``torch.load(weights_only=True)`` (no code runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch

from training.networks import NetConfig, StyleNet

CHECKPOINT_FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or from another architecture."""


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint and check its format; the result holds config, styles, weights, step."""
    try:
        ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path}: no such checkpoint") from exc
    except Exception as exc:  # torch raises many types for a non-checkpoint file
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: not a livestyle checkpoint, or one that would run code when loaded ({reason})"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT or "net_config" not in ckpt:
        raise CheckpointError(f"{path}: not a livestyle checkpoint (format {CHECKPOINT_FORMAT})")
    return ckpt


def build_from_checkpoint(ckpt: dict[str, Any]) -> tuple[StyleNet, list[str]]:
    """The network a checkpoint describes, with its weights loaded."""
    try:  # a design field this version does not know (e.g. the removed gate head) is refused by name
        config = NetConfig.from_json(ckpt["net_config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint architecture not supported by this version: {exc}") from exc
    net = StyleNet(config)
    try:
        net.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint weights do not fit its architecture: {str(exc)[:200]}") from exc
    return net, list(ckpt["styles"])


class Recordable(Protocol):
    """A run's settings as stored in its checkpoint."""

    def to_json(self) -> dict[str, Any]: ...


def save_checkpoint(
    path: Path,
    net: StyleNet,
    styles: list[str],
    step: int,
    cfg: Recordable,
    optimizer: torch.optim.Optimizer | None,
    metrics: dict[str, float],
) -> None:
    """Atomic save (temporary name, then rename); the optimizer state is optional."""
    body = {
        "format": CHECKPOINT_FORMAT,
        "net_config": net.config.to_json(),
        "styles": styles,
        "state_dict": net.state_dict(),
        "step": step,
        "train_config": cfg.to_json(),
        "metrics": metrics,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "rng": torch.get_rng_state(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(body, tmp)
    tmp.replace(path)


def copy_matching(student: StyleNet, teacher: StyleNet) -> list[str]:
    """Copy every teacher tensor whose name and shape the student shares; returns the names copied."""
    theirs = teacher.state_dict()
    mine = student.state_dict()
    copied = [k for k, v in mine.items() if k in theirs and theirs[k].shape == v.shape]
    student.load_state_dict({**mine, **{k: theirs[k] for k in copied}})
    return copied


def extend_styles(net: StyleNet, extra: int) -> StyleNet:
    """A copy of ``net`` with ``extra`` more styles; new gamma/beta rows start at the mean of the old."""
    cfg = NetConfig.from_json(net.config.to_json() | {"num_styles": net.config.num_styles + extra})
    bigger = StyleNet(cfg)
    state = net.state_dict()
    for name, value in bigger.state_dict().items():
        old = state[name]
        if name.endswith((".gamma", ".beta")):
            value.copy_(torch.cat([old, old.mean(0, keepdim=True).repeat(extra, 1)]))
        else:
            value.copy_(old)
    return bigger
