"""Perceptual losses as pure functions (Gatys et al. 2016; Johnson et al. 2016).

Definitions follow docs/quality-metric (shared QUALITY-METRIC.md): Gram normalised by C*H*W, style loss
scaled by 1e6 and summed over layers, content loss the mean squared feature difference.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping

import torch

from training.grid import grid_bins

STYLE_SCALE = 1e6


def gram(features: torch.Tensor) -> torch.Tensor:
    """[B,C,H,W] -> [B,C,C], normalised by C*H*W."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def content_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared feature difference."""
    return torch.mean((output - target) ** 2)


def style_loss(
    output: Mapping[str, torch.Tensor], target_grams: Mapping[str, torch.Tensor], layers: Iterable[str]
) -> torch.Tensor:
    """1e6 * sum over layers of mean((G_out - G_target)^2); targets [B,C,C] or [1,C,C] (broadcast)."""
    total = torch.zeros((), device=next(iter(output.values())).device)
    for layer in layers:
        total = total + torch.mean((gram(output[layer]) - target_grams[layer]) ** 2)
    return STYLE_SCALE * total


def per_item_style_loss(
    output: Mapping[str, torch.Tensor], target_grams: Mapping[str, torch.Tensor], layers: Iterable[str]
) -> torch.Tensor:
    """Like :func:`style_loss` but one value per batch item: [B]."""
    parts = [torch.mean((gram(output[layer]) - target_grams[layer]) ** 2, dim=(1, 2)) for layer in layers]
    return STYLE_SCALE * torch.stack(parts).sum(0)


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring pixels (smoothness prior)."""
    dh = image[..., 1:, :] - image[..., :-1, :]
    dw = image[..., :, 1:] - image[..., :, :-1]
    return torch.mean(dh**2) + torch.mean(dw**2)


def activation_energy(features: torch.Tensor) -> torch.Tensor:
    """What DeepDream maximises in one layer: the mean squared activation of each item, [B,C,H,W] -> [B]."""
    return features.pow(2).mean(dim=(1, 2, 3))


def log_activation_gain(output: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Per item log(energy(out) / energy(source)) of one layer: [B,C,H,W] x2 -> [B] (0: no gain)."""
    return torch.log(activation_energy(output) + 1e-8) - torch.log(activation_energy(source) + 1e-8)


def grid_penalty(image: torch.Tensor, divisions: int = 4) -> torch.Tensor:
    """How far a batch shows a 2- or 4-pixel mesh, differentiably: the grid score's spectrum (QUALITY-METRIC.md,
    training/grid.py) with each of the 15 bins at multiples of a quarter side compared with the mean of its
    5x5 neighbourhood; the mean of log(max(ratio, 1)). 0 when no bin stands out, so it never asks for blur.
    ``divisions`` 8 takes the bins at multiples of an eighth side (63 of them): the 8-pixel mesh of an encoder
    that strides by 8 as well. [B,3,H,W] with H, W multiples of ``divisions`` -> scalar."""
    b, _, h, w = image.shape
    bins = grid_bins(h, w, divisions)  # the score's own bins (and its check of divisions and sides)
    luma = 0.299 * image[:, 0] + 0.587 * image[:, 1] + 0.114 * image[:, 2]
    luma = luma - luma.mean(dim=(1, 2), keepdim=True)
    window = (
        torch.hann_window(h, periodic=False, device=image.device)[:, None]
        * torch.hann_window(w, periodic=False, device=image.device)[None, :]
    )
    power = torch.fft.fft2(luma.float() * window).abs().pow(2)  # [B,H,W]
    total = torch.zeros((), device=image.device)
    offsets = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if (dy, dx) != (0, 0)]
    for fy, fx in bins:
        around = torch.stack([power[:, (fy + dy) % h, (fx + dx) % w] for dy, dx in offsets], dim=1).mean(1)
        ratio = power[:, fy, fx] / (around + 1e-12)
        total = total + torch.log(ratio.clamp(min=1.0)).sum()
    return total / (b * len(bins))


def shift_penalty(
    stylize: Callable[[torch.Tensor], torch.Tensor],
    frame: torch.Tensor,
    output: torch.Tensor,
    shift: tuple[int, int],
    multiple: int = 8,
    margin: int = 16,
) -> torch.Tensor:
    """How far a network is from shift-equivariant: the frame moved by ``shift`` = (dy, dx) pixels (a crop one
    ``multiple`` smaller, so no padding enters) is stylized again and compared with ``output`` (the whole
    frame's) moved the same, away from a ``margin`` at the borders (at most a quarter of the side). A pattern
    locked to the stride grid (the 4-pixel row mesh of a strided encoder) moves differently from the content
    under a shift that is not a multiple of the total stride; a painting of the content moves with it (Zhang,
    "Making Convolutional Networks Shift-Invariant Again", ICML 2019). Mean squared difference; [B,3,H,W] in,
    scalar out."""
    dy, dx = shift
    h, w = frame.shape[-2] - multiple, frame.shape[-1] - multiple
    if not (0 <= dy <= multiple and 0 <= dx <= multiple) or h < 4 or w < 4:
        raise ValueError(f"shift {shift} or frame {tuple(frame.shape[-2:])} does not fit multiple {multiple}")
    margin = min(margin, h // 4, w // 4)
    moved = stylize(frame[..., dy : dy + h, dx : dx + w])
    same = output[..., dy : dy + h, dx : dx + w]
    return (moved[..., margin:-margin, margin:-margin] - same[..., margin:-margin, margin:-margin]).pow(2).mean()


def handheld_move(rng: random.Random) -> tuple[float, float, float, float]:
    """A hand-held camera's next frame, as ``camera_grid`` takes it: (dy px, dx px, degrees turned, zoom factor),
    up to 6 px each way, 1 degree and 2% zoom."""
    return rng.uniform(-6.0, 6.0), rng.uniform(-6.0, 6.0), rng.uniform(-1.0, 1.0), math.exp(rng.uniform(-0.02, 0.02))


def camera_grid(
    frame: torch.Tensor, move: tuple[float, float, float, float], bend: torch.Tensor | None = None
) -> torch.Tensor:
    """Where each pixel of ``frame`` [B,C,H,W] comes from after a hand-held camera's ``move`` = (dy px, dx px,
    degrees turned, zoom factor) about its centre, in grid_sample's [-1, 1] coordinates: [B,H,W,2]. ``bend``: a
    [B,H,W,2] displacement in px (x, y) added to it, so the move is not rigid, as a real camera's flow is not
    (parallax, subjects that move; ``smooth_bend``)."""
    b, _, h, w = frame.shape
    dy, dx, degrees, zoom = move
    if not zoom > 0 or h < 8 or w < 8:
        raise ValueError(f"zoom {zoom} must be > 0 and the frame {h}x{w} at least 8x8")
    turn = torch.tensor(degrees * torch.pi / 180.0, dtype=torch.float64)
    cos, sin = float(torch.cos(turn)) / zoom, float(torch.sin(turn)) / zoom
    # Pixels turned and zoomed about the centre, then moved (the aspect enters because the two axes are
    # normalized by different sides).
    theta = torch.tensor(
        [[cos, -sin * h / w, -2.0 * dx / w], [sin * w / h, cos, -2.0 * dy / h]], dtype=frame.dtype, device=frame.device
    ).expand(b, 2, 3)
    grid = torch.nn.functional.affine_grid(theta, [b, 3, h, w], align_corners=False)
    if bend is not None:
        if bend.shape != (b, h, w, 2):
            raise ValueError(f"bend must be [{b},{h},{w},2] for a {h}x{w} frame, got {list(bend.shape)}")
        grid = grid + bend.to(grid) * torch.tensor([2.0 / w, 2.0 / h], dtype=grid.dtype, device=grid.device)
    return grid


def _moved_difference(moved: torch.Tensor, still: torch.Tensor, grid: torch.Tensor, margin: int) -> torch.Tensor:
    """Per pixel of ``moved`` [B,C,h,w], the mean over channels of its squared difference to ``still`` carried
    along ``grid`` (any resolution: it is pooled to h x w), where both lie ``margin`` cells inside the picture."""
    b, _, h, w = moved.shape
    if grid.shape[1:3] != (h, w):
        grid = torch.nn.functional.adaptive_avg_pool2d(grid.permute(0, 3, 1, 2), (h, w)).permute(0, 2, 3, 1)
    same = torch.nn.functional.grid_sample(still, grid.to(still.dtype), align_corners=False)
    inside = (grid[..., 0].abs() <= 1.0 - 2.0 * margin / w) & (grid[..., 1].abs() <= 1.0 - 2.0 * margin / h)
    inside[:, :margin] = inside[:, h - margin :] = False
    inside[:, :, :margin] = inside[:, :, w - margin :] = False
    if not inside.any():
        raise ValueError(f"the move leaves nothing of a {h}x{w} picture to compare")
    return (moved.float() - same.float()).pow(2).mean(dim=1)[inside]


def motion_penalty(
    stylize: Callable[[torch.Tensor], torch.Tensor],
    frame: torch.Tensor,
    output: torch.Tensor,
    move: tuple[float, float, float, float],
    margin: int = 16,
    bend: torch.Tensor | None = None,
    relative: bool = False,
) -> torch.Tensor:
    """How far a network's strokes are from following a hand-held camera: the frame moved by ``move`` (and
    ``bend``: ``camera_grid``; bilinear, reflected at the border) is stylized again and compared with ``output``
    (the whole frame's) warped the same, where both lie a ``margin`` inside the picture (the margin at most a
    quarter of a side). A network that repaints each frame's strokes in new places (table 13) fails it even
    when it is shift-equivariant on the stride grid (``shift_penalty``); strokes that stay on the content pass,
    and then stabilization has nothing to average away (Gupta et al., "Characterizing and Improving Stability
    in Neural Style Transfer", ICCV 2017, train for it the same way). Mean squared difference; [B,3,H,W] in,
    scalar out. ``relative``: divided by the output's variance (per item and channel, with its gradient), so that
    painting with less contrast does not pass it; the style loss then alone decides how strongly to paint."""
    grid = camera_grid(frame, move, bend)
    h, w = frame.shape[-2:]
    moved = stylize(torch.nn.functional.grid_sample(frame, grid, padding_mode="reflection", align_corners=False))
    difference = _moved_difference(moved, output, grid, min(margin, h // 4, w // 4)).mean()
    if not relative:
        return difference
    return difference / output.float().var(dim=(-2, -1)).mean().clamp_min(1e-12)


def feature_motion_penalty(
    moved_features: torch.Tensor, features: torch.Tensor, grid: torch.Tensor, margin: int = 2
) -> torch.Tensor:
    """The motion penalty on a network's inner features: those of the moved frame against the frame's own
    carried along the same ``camera_grid`` (pooled to their grid), relative to the features' mean square, ``margin``
    cells inside. Held only at the output, a network can pass the motion penalty by painting less; held where
    the decoder starts, the strokes it draws have to sit on the content (Gao et al., "ReCoNet", ACCV 2018,
    hold both). [B,C,h,w] features, scalar out."""
    if moved_features.shape != features.shape:
        raise ValueError(f"features of the moved frame {list(moved_features.shape)} != {list(features.shape)}")
    h, w = features.shape[-2:]
    scale = features.detach().float().pow(2).mean().clamp_min(1e-12)
    return _moved_difference(moved_features, features, grid, min(margin, h // 4, w // 4)).mean() / scale


def smooth_bend(batch: int, height: int, width: int, px: float, generator: torch.Generator) -> torch.Tensor:
    """A random displacement that varies smoothly across the frame, at most ``px`` pixels either way: each of
    3x4 control points draws its own (x, y) offset, bicubic in between (``motion_penalty``'s ``bend``).
    [B,H,W,2] in px."""
    if not px >= 0:
        raise ValueError(f"bend must be >= 0 px, got {px}")
    points = (torch.rand(batch, 2, 3, 4, generator=generator) * 2.0 - 1.0) * px
    field = torch.nn.functional.interpolate(points, size=(height, width), mode="bicubic", align_corners=True)
    return field.clamp(-px, px).permute(0, 2, 3, 1)
