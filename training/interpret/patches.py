"""Maximally activating patches (Zeiler & Fergus 2014; Girshick et al. 2014) with exact receptive fields.

The receptive field is computed, not guessed: the convolutions and poolings that run before the chosen
layer are traced for the actual input size (so TensorFlow "SAME" padding, which depends on it, is
exact), and their kernel, stride, dilation and leading padding are composed along each axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from training.classifier import Conv2dSame
from training.interpret.hooks import capture, removing


@dataclass(frozen=True)
class Geometry:
    """One layer along one axis: output i reads inputs i*stride - pad ... + dilation*(kernel-1)."""

    kernel: int
    stride: int = 1
    pad: int = 0  # padding before the first input pixel
    dilation: int = 1


@dataclass(frozen=True)
class ReceptiveField:
    """Output index i sees input pixels [start + i*jump, start + i*jump + size) (before clipping)."""

    size: int
    jump: int
    start: int

    def span(self, i: int, limit: int | None = None) -> tuple[int, int]:
        """[lo, hi) of output index ``i``, clipped to [0, limit) when a limit is given."""
        lo = self.start + i * self.jump
        hi = lo + self.size
        return (max(lo, 0), min(hi, limit)) if limit is not None else (lo, hi)


def receptive_field(layers: Sequence[Geometry]) -> ReceptiveField:
    """Compose a chain of layers (first applied first) into one receptive field along an axis."""
    size, jump, start = 1, 1, 0
    for g in layers:
        size += g.dilation * (g.kernel - 1) * jump
        start -= g.pad * jump
        jump *= g.stride
    return ReceptiveField(size, jump, start)


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _geometry(module: nn.Module, height: int, width: int) -> tuple[Geometry, Geometry] | None:
    """(rows, cols) geometry of one module for an input of this size; None if it keeps positions."""
    if isinstance(module, Conv2dSame):
        left, _, top, _ = module.padding_for(height, width)
        k, s, d = module.kernel_size, module.stride, module.dilation
        return Geometry(k[0], s[0], top, d[0]), Geometry(k[1], s[1], left, d[1])
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        k, s = _pair(module.kernel_size), _pair(module.stride)  # type: ignore[arg-type]
        d = _pair(getattr(module, "dilation", 1))  # type: ignore[arg-type]
        pad = module.padding
        if pad == "valid":
            p = (0, 0)
        elif pad == "same":
            p = (d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2)
        else:
            p = _pair(pad)  # type: ignore[arg-type]
        return Geometry(k[0], s[0], p[0], d[0]), Geometry(k[1], s[1], p[1], d[1])
    if isinstance(module, (nn.ReflectionPad2d, nn.ReplicationPad2d, nn.ZeroPad2d, nn.ConstantPad2d)):
        left, _, top, _ = module.padding  # type: ignore[misc]
        return Geometry(1, 1, top), Geometry(1, 1, left)
    return None


class _Reached(Exception):
    """Raised by the target layer's hook: the rest of the forward is not needed."""


def trace_receptive_field(model: nn.Module, layer: str, size: tuple[int, int]) -> tuple[ReceptiveField, ...]:
    """(rows, cols) receptive field of ``layer``'s units for a [1,3,h,w] input, by tracing the forward.

    The spatial layers that run before ``layer`` must form one chain (each reads the previous one's
    output size); a network whose branches change resolution in parallel is refused.
    """
    target = model.get_submodule(layer)
    chain: list[tuple[Geometry, Geometry]] = []
    shape: list[tuple[int, int]] = [size]

    def record(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        h, w = inputs[0].shape[-2:]
        geometry = _geometry(module, h, w)
        if geometry is None or (geometry[0].kernel == geometry[0].stride == 1 and not geometry[0].pad):
            return
        if (h, w) != shape[-1]:
            raise ValueError(
                f"{type(module).__name__} reads a {h}x{w} map but the chain is at "
                f"{shape[-1][0]}x{shape[-1][1]}: not a single chain of layers"
            )
        chain.append(geometry)
        shape.append(tuple(output.shape[-2:]))  # type: ignore[arg-type]

    def stop(_module: nn.Module, _inputs: object, _output: object) -> None:
        raise _Reached

    leaves = [m for m in model.modules() if not list(m.children())]
    param = next(model.parameters(), None)
    x = torch.zeros(1, 3, *size) if param is None else torch.zeros(1, 3, *size, device=param.device, dtype=param.dtype)
    with removing([m.register_forward_hook(record) for m in leaves] + [target.register_forward_hook(stop)]):
        try:
            with torch.no_grad():
                model(x)
        except _Reached:
            pass
    return receptive_field([g[0] for g in chain]), receptive_field([g[1] for g in chain])


@dataclass(frozen=True)
class Patch:
    image: int  # index into the photo batch
    box: tuple[int, int, int, int]  # top, left, bottom, right (exclusive), clipped to the image
    value: float  # the channel's activation there


def top_patches(
    model: nn.Module, layer: str, images: torch.Tensor, channels: Sequence[int], k: int = 8, batch_size: int = 32
) -> dict[int, list[Patch]]:
    """For each channel, its k strongest activations over ``images`` ([N,3,H,W]), one per image."""
    h, w = images.shape[-2:]
    rows, cols = trace_receptive_field(model, layer, (h, w))
    maxima, where = [], []
    for first in range(0, len(images), batch_size):
        act = capture(model, [layer], images[first : first + batch_size])[layer][:, list(channels)]
        flat = act.flatten(2)  # [n, channels, h'*w']
        values, index = flat.max(dim=2)
        maxima.append(values.cpu())
        where.append(index.cpu())
        width = act.shape[-1]
    values, index = torch.cat(maxima), torch.cat(where)
    result: dict[int, list[Patch]] = {}
    for c, channel in enumerate(channels):
        best = values[:, c].topk(min(k, len(values))).indices
        patches = []
        for n in best.tolist():
            i, j = divmod(int(index[n, c]), width)
            top, bottom = rows.span(i, h)
            left, right = cols.span(j, w)
            patches.append(Patch(n, (top, left, bottom, right), float(values[n, c])))
        result[channel] = patches
    return result


def crop(images: torch.Tensor, patch: Patch) -> torch.Tensor:
    """The patch's pixels, [1,3,bottom-top,right-left]."""
    top, left, bottom, right = patch.box
    return images[patch.image : patch.image + 1, :, top:bottom, left:right]
