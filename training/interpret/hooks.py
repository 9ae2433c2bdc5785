"""Forward hooks that read layer outputs, always removed again (even when the forward raises)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


@contextmanager
def removing(handles: list[RemovableHandle]) -> Iterator[list[RemovableHandle]]:
    """Yield the handles; remove every one on the way out, whatever happened inside."""
    try:
        yield handles
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def recording(model: nn.Module, layers: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """While inside, each forward of ``model`` stores the named submodules' outputs in the yielded dict."""
    outputs: dict[str, torch.Tensor] = {}

    def keep(name: str):  # type: ignore[no-untyped-def]
        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            outputs[name] = output

        return hook

    modules = {name: model.get_submodule(name) for name in layers}  # unknown names fail before hooking
    with removing([m.register_forward_hook(keep(name)) for name, m in modules.items()]):
        yield outputs


def capture(model: nn.Module, layers: Sequence[str], inputs: torch.Tensor) -> dict[str, torch.Tensor]:
    """The named submodules' outputs for one forward of ``inputs`` (no gradients)."""
    with recording(model, layers) as outputs, torch.no_grad():
        model(inputs)
    return dict(outputs)
