"""Carried pairs: teaching a network with a memory (``NetConfig.memory``) to carry its strokes from frame to frame.

After Ruder, Dosovitskiy and Brox, "Artistic style transfer for videos and spherical images" (IJCV 2018): the
network paints a frame, the frame moves as a hand-held camera's next one would, and the network paints it again
with its first painting carried along the flow as its memory. Its second painting is held to the first carried
along the true move wherever the memory is trusted, besides the usual style and content losses. The memory it is
given was carried along a slightly wrong flow (a real flow is never exact) and a new subject is pasted into the
moved frame where the memory is not trusted (a real camera reveals and occludes), so copying the memory is not
enough: the frame decides where the strokes go, the memory which strokes to draw.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from training.loop import as_float, autocast_for
from training.losses import camera_grid, content_loss, handheld_move, smooth_bend, total_variation
from training.networks import memory_input


class Trainer(Protocol):
    """What the carried chain needs of ``training.train.Trainer`` (which calls it)."""

    @property
    def cfg(self) -> Any: ...  # a TrainConfig (training.train imports this module)
    @property
    def rng(self) -> random.Random: ...
    @property
    def device(self) -> torch.device: ...
    @property
    def model(self) -> nn.Module: ...
    @property
    def vgg(self) -> nn.Module: ...

    def style_term(self, feats: dict[str, torch.Tensor], pos: torch.Tensor, scale: int, items: int) -> torch.Tensor: ...


@dataclass(frozen=True)
class CarriedPair:
    """The second frame of a carried pair and what its painting is held to; all [B,*,H,W]."""

    frame: torch.Tensor  # the batch moved by the camera, a new subject pasted over part of each item
    memory: torch.Tensor  # the network's second input: the first painting carried along a noisy flow x trust, trust
    target: torch.Tensor  # the first painting carried along the true move
    trust: torch.Tensor  # [B,1,H,W]: 1 where the memory is trusted (inside the picture, off the new subject), else 0


def carried_pair(
    content: torch.Tensor,
    painted: torch.Tensor,
    rng: random.Random,
    flow_error: float = 1.0,
    bend: float = 3.0,
) -> CarriedPair:
    """A hand-held move of ``content`` [B,3,H,W] (up to 6 px, 1 degree, 2% zoom, ``bend`` px of smooth non-rigid
    displacement) and of its painting ``painted`` (detached: the memory is an input, the first painting learns
    from its own losses), with the memory carried along a flow up to ``flow_error`` px wrong. Each item gets a box
    (an eighth to a third of each side) of the next item's frame pasted in: a new subject, untrusted."""
    if content.shape != painted.shape or content.dim() != 4 or content.shape[1] != 3:
        raise ValueError(f"content {list(content.shape)} and painting {list(painted.shape)} must be the same [B,3,H,W]")
    if not (flow_error >= 0 and bend >= 0):
        raise ValueError(f"flow error and bend must be >= 0 px, got {flow_error}, {bend}")
    b, _, h, w = content.shape
    move = handheld_move(rng)
    drawn = torch.Generator().manual_seed(rng.getrandbits(63))
    true_bend = smooth_bend(b, h, w, rng.uniform(0.0, bend), drawn).to(content.device)
    grid = camera_grid(content, move, true_bend)
    wrong = camera_grid(content, move, true_bend + smooth_bend(b, h, w, flow_error, drawn).to(content.device))
    # Everything moves bicubic, clipped as uint8 is: a camera's next frame is as sharp as its last, and the service
    # warps a moving camera's memory bicubic (StabilizeOptions.moving_warp). A bilinear warp is a blur, and a
    # target blurred by it would teach the carried painting to soften.
    frame = F.grid_sample(content, grid, mode="bicubic", padding_mode="reflection", align_corners=False).clamp(0, 1)
    painted = painted.detach()
    target = F.grid_sample(painted, grid, mode="bicubic", align_corners=False).clamp(0.0, 1.0)
    carried = F.grid_sample(painted, wrong, mode="bicubic", align_corners=False).clamp(0.0, 1.0)
    # trusted where the true move's 4x4 sample lies wholly inside the picture (no zero padding in the target)
    inside = (grid[..., 0].abs() <= 1 - 4 / w) & (grid[..., 1].abs() <= 1 - 4 / h)
    trust = inside.to(content.dtype)[:, None]
    for i in range(b):
        bh, bw = rng.randrange(max(1, h // 8), max(2, h // 3)), rng.randrange(max(1, w // 8), max(2, w // 3))
        y, x = rng.randrange(0, h - bh + 1), rng.randrange(0, w - bw + 1)
        frame[i, :, y : y + bh, x : x + bw] = content[(i + 1) % b, :, y : y + bh, x : x + bw]
        trust[i, :, y : y + bh, x : x + bw] = 0.0
    return CarriedPair(frame, memory_input(carried, trust), target, trust)


def carried_loss(output: torch.Tensor, pair: CarriedPair, paint: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the second painting ``output`` to the carried first one, over the trusted pixels
    of the items that carry a painting (``paint`` [B] bool: dream items are left out, as from the motion
    penalty); 0 when there are none."""
    weight = pair.trust * paint.to(pair.trust)[:, None, None, None]
    squared = (output.float() - pair.target.float()).pow(2).mean(dim=1, keepdim=True)
    return (squared * weight).sum() / weight.sum().clamp_min(1.0)


def carried_terms(
    trainer: Trainer, content: torch.Tensor, weights: torch.Tensor, output: torch.Tensor, pos: torch.Tensor, scale: int
) -> dict[str, tuple[float, torch.Tensor]]:
    """The carried chain's terms for a training step (``Trainer.train_step``'s name -> (weight, unweighted term)):
    "memory", the carried loss, and "carried", the style, content and tv losses of the paintings made with a
    memory (already weighted by the run's own weights), each the mean over the chain's carried frames, per batch
    item. Only the items that carry a painting take part; both are 0 when ``memory_weight`` is."""
    cfg = trainer.cfg
    zero = torch.zeros((), device=output.device)
    paint = pos < len(cfg.style_images)
    if not cfg.memory_weight or not paint.any():
        return {"memory": (cfg.memory_weight, zero), "carried": (1.0, zero)}
    frames, painted, mine, placed = content[paint], output[paint], weights[paint], pos[paint]
    memory = carried = zero
    everyone = torch.ones(len(frames), dtype=torch.bool, device=output.device)
    for _ in range(cfg.memory_chain - 1):
        pair = carried_pair(frames, painted, trainer.rng, cfg.memory_flow_error)
        with autocast_for(trainer.device, cfg.precision, "net"):
            painted = trainer.model(pair.frame, mine, pair.memory).float()
        with autocast_for(trainer.device, cfg.precision, "loss"):
            feats = as_float(trainer.vgg(painted))
            with torch.no_grad():
                source = as_float(trainer.vgg(pair.frame))
        memory = memory + carried_loss(painted, pair, everyone)
        carried = carried + (
            cfg.style_weight * trainer.style_term(feats, placed, scale, len(frames))
            + cfg.content_weight * content_loss(feats[cfg.content_tap], source[cfg.content_tap])
            + cfg.tv_weight * total_variation(painted)
        )
        frames = pair.frame
    share = float(paint.sum()) / len(paint) / (cfg.memory_chain - 1)
    return {"memory": (cfg.memory_weight, memory * share), "carried": (1.0, carried * share)}
