"""Carried pairs: teaching a network with a memory (``NetConfig.memory``) to carry its strokes from frame to frame.

After Ruder, Dosovitskiy and Brox, "Artistic style transfer for videos and spherical images" (IJCV 2018): the
network paints a frame, the frame moves as a hand-held camera's next one would, and the network paints it again
with its first painting carried along the flow as its memory, and so on along a chain. Each painting is held to the
chain's first one carried along the true moves wherever that is trusted, besides the usual style and content
losses. The memory it is given was carried along a wrong flow (a real flow is never exact: a slightly bent true
move, or the service's stabilizer's own flow estimated on the frames) and a new subject is pasted into the moved
frame where the memory is not trusted (a real camera reveals and occludes), so copying the memory is not enough:
the frame decides where the strokes go, the memory which strokes to draw.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from service.contract import frame_to_image, image_to_frame
from service.stabilize import Motion, StabilizeOptions, Stabilizer
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


# The memory as the service's Steady carries it (``Stabilizer.motion``: DIS flow at half size, the photometric
# trust, feathered, a bicubic warp while the camera moves), without detail restoration or a blend: the network
# does the carrying. Any blend in (0, 1) will do: the trust is the stabilizer's weight over it.
BLEND = 0.9
CARRY = StabilizeOptions(blend=BLEND, detail_target=0.0, moving_blend=BLEND)
FLOWS = ("noisy", "stabilizer")


def memory_of(motion: Motion) -> torch.Tensor | None:
    """The network's memory input (``memory_input``) from a stabilizer's ``motion`` under ``CARRY``; None on a
    first frame."""
    if motion.warped is None or motion.keep is None:
        return None
    rgb = torch.from_numpy(image_to_frame(motion.warped))
    return memory_input(rgb, torch.from_numpy(motion.keep / BLEND)[None, None])


def _uint8(image: torch.Tensor) -> np.ndarray:
    """[3,H,W] in [0,1] -> HxWx3 uint8, as the service hands frames to its stabilizer."""
    return frame_to_image(image.detach()[None].cpu().float().numpy())


def stabilizer_memory(previous: torch.Tensor, painted: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
    """``painted``, the painting of ``previous``, carried onto ``frame`` (all [B,3,H,W]) as Steady carries it: its
    own flow, estimated on the frames, and its own trust, with their errors. [B,MEMORY_CHANNELS,H,W]."""
    memories = []
    for before, painting, now in zip(previous, painted, frame, strict=True):
        stabilizer = Stabilizer(CARRY)
        stabilizer.blend(stabilizer.motion(_uint8(before)), _uint8(painting))  # remembered as painted
        memory = memory_of(stabilizer.motion(_uint8(now)))
        assert memory is not None  # a second frame of the same size always has a motion
        memories.append(memory)
    return torch.cat(memories).to(frame)


def _inside(where: torch.Tensor) -> torch.Tensor:
    """[B,1,H,W]: 1 where a bicubic (4x4) sample at ``where`` [B,H,W,2] lies wholly inside the picture."""
    h, w = where.shape[1:3]
    return ((where[..., 0].abs() <= 1 - 4 / w) & (where[..., 1].abs() <= 1 - 4 / h)).to(where.dtype)[:, None]


@dataclass(frozen=True)
class Held:
    """What a chain's paintings are held to: its first painting carried along the true moves so far. It and the
    chain's frames are sampled once from where each pixel came from, so that no warp compounds (a frame is as sharp
    at the chain's end as at its start). A painting that drifts off the scene, a copy of a copy carried along a
    wrong flow, is held back to it."""

    scene: torch.Tensor  # [B,3,H,W] the chain's first frame
    first: torch.Tensor  # [B,3,H,W] its painting, detached
    where: torch.Tensor  # [B,H,W,2]: where each pixel of the latest frame lies in the first, in grid_sample's terms
    trust: torch.Tensor  # [B,1,H,W]: 1 where that is inside the first frame and no new subject came since

    @classmethod
    def start(cls, content: torch.Tensor, painted: torch.Tensor) -> Held:
        b, _, h, w = painted.shape
        identity = torch.eye(2, 3, dtype=painted.dtype, device=painted.device).expand(b, 2, 3)
        where = F.affine_grid(identity, [b, 3, h, w], align_corners=False)
        return cls(content, painted.detach(), where, torch.ones_like(painted[:, :1]))

    def moved(self, grid: torch.Tensor) -> Held:
        """Held after the camera's next move, ``grid`` (``camera_grid``'s)."""
        where = F.grid_sample(self.where.permute(0, 3, 1, 2), grid, align_corners=False, padding_mode="border")
        where = where.permute(0, 2, 3, 1)
        trust = F.grid_sample(self.trust, grid, mode="nearest", align_corners=False) * _inside(where)
        return Held(self.scene, self.first, where, trust)

    def frame(self) -> torch.Tensor:
        """The chain's first frame as the camera sees it now (reflected beyond its edges, as a scene goes on)."""
        return F.grid_sample(self.scene, self.where, "bicubic", "reflection", align_corners=False).clamp(0.0, 1.0)

    def target(self) -> torch.Tensor:
        return F.grid_sample(self.first, self.where, mode="bicubic", align_corners=False).clamp(0.0, 1.0)


@dataclass(frozen=True)
class CarriedPair:
    """The next frame of a carried chain and what its painting is held to; all [B,*,H,W]."""

    frame: torch.Tensor  # the batch moved by the camera, a new subject pasted over part of each item
    memory: torch.Tensor  # the network's second input: the last painting carried (``memory_input``)
    held: Held  # the chain's first painting carried along the true moves, and where it is trusted

    @property
    def target(self) -> torch.Tensor:
        return self.held.target()

    @property
    def trust(self) -> torch.Tensor:
        return self.held.trust


def carried_pair(
    content: torch.Tensor,
    painted: torch.Tensor,
    rng: random.Random,
    flow_error: float = 1.0,
    bend: float = 3.0,
    flow: str = "noisy",
    held: Held | None = None,
) -> CarriedPair:
    """A hand-held move of ``content`` [B,3,H,W] (up to 6 px, 1 degree, 2% zoom, ``bend`` px of smooth non-rigid
    displacement) and the memory of its painting ``painted`` (detached: the memory is an input, the first painting
    learns from its own losses): carried along a flow up to ``flow_error`` px wrong and trusted where the move is
    ("noisy"), or carried and trusted as the service's stabilizer does on the frames ("stabilizer"). Each item gets
    a box (an eighth to a third of each side) of the next item's frame pasted in: a new subject, untrusted.
    ``held``: the chain so far (None: ``painted`` is its first painting)."""
    if content.shape != painted.shape or content.dim() != 4 or content.shape[1] != 3:
        raise ValueError(f"content {list(content.shape)} and painting {list(painted.shape)} must be the same [B,3,H,W]")
    if not (flow_error >= 0 and bend >= 0):
        raise ValueError(f"flow error and bend must be >= 0 px, got {flow_error}, {bend}")
    if flow not in FLOWS:
        raise ValueError(f"flow must be one of {FLOWS}, got {flow!r}")
    b, _, h, w = content.shape
    move = handheld_move(rng)
    drawn = torch.Generator().manual_seed(rng.getrandbits(63))
    true_bend = smooth_bend(b, h, w, rng.uniform(0.0, bend), drawn).to(content.device)
    grid = camera_grid(content, move, true_bend)
    # Everything moves bicubic, clipped as uint8 is: a camera's next frame is as sharp as its last, and the service
    # warps a moving camera's memory bicubic (StabilizeOptions.moving_warp). A bilinear warp is a blur, and a
    # target blurred by it would teach the carried painting to soften.
    painted = painted.detach()
    held = (held or Held.start(content, painted)).moved(grid)
    moved = held.frame()
    frame = moved.clone()
    trust = _inside(grid)  # this move's own: the memory's trust under the "noisy" flow
    for i in range(b):
        bh, bw = rng.randrange(max(1, h // 8), max(2, h // 3)), rng.randrange(max(1, w // 8), max(2, w // 3))
        y, x = rng.randrange(0, h - bh + 1), rng.randrange(0, w - bw + 1)
        frame[i, :, y : y + bh, x : x + bw] = moved[(i + 1) % b, :, y : y + bh, x : x + bw]
        trust[i, :, y : y + bh, x : x + bw] = 0.0
        held.trust[i, :, y : y + bh, x : x + bw] = 0.0
    if flow == "stabilizer":
        memory = stabilizer_memory(content, painted, frame)
    else:
        wrong = camera_grid(content, move, true_bend + smooth_bend(b, h, w, flow_error, drawn).to(content.device))
        memory = memory_input(F.grid_sample(painted, wrong, mode="bicubic", align_corners=False).clamp(0, 1), trust)
    return CarriedPair(frame, memory, held)


def nearest_squared(output: torch.Tensor, target: torch.Tensor, slack: int = 0) -> torch.Tensor:
    """[B,1,H,W]: each pixel's squared difference (mean over channels) of ``output`` to the nearest of ``target``'s
    pixels within ``slack`` px. A memory carried along a real flow is that far out of place, and an exact target
    then asks for the mean of where a stroke might be, a blur; with slack a stroke drawn a pixel off costs nothing,
    a stroke blurred over its neighbours still does."""
    output, target = output.float(), target.float()
    if not slack:
        return (output - target).pow(2).mean(dim=1, keepdim=True)
    h, w = target.shape[-2:]
    padded = F.pad(target, (slack,) * 4, mode="replicate")
    span = range(2 * slack + 1)
    errors = [(output - padded[..., y : y + h, x : x + w]).pow(2).mean(dim=1, keepdim=True) for y in span for x in span]
    return torch.stack(errors).amin(dim=0)


def carried_loss(output: torch.Tensor, pair: CarriedPair, paint: torch.Tensor, slack: int = 0) -> torch.Tensor:
    """Mean squared difference (``nearest_squared``, within ``slack`` px) of the second painting ``output`` to the
    carried first one, over the trusted pixels of the items that carry a painting (``paint`` [B] bool: dream items
    are left out, as from the motion penalty); 0 when there are none."""
    weight = pair.trust * paint.to(pair.trust)[:, None, None, None]
    squared = nearest_squared(output, pair.target, slack)
    return (squared * weight).sum() / weight.sum().clamp_min(1.0)


def carried_terms(
    trainer: Trainer, content: torch.Tensor, weights: torch.Tensor, output: torch.Tensor, pos: torch.Tensor, scale: int
) -> dict[str, tuple[float, torch.Tensor]]:
    """The carried chain's terms for a training step (``Trainer.train_step``'s name -> (weight, unweighted term)):
    "memory", the carried loss, and "carried", the style, content and tv losses of the paintings made with a
    memory (already weighted by the run's own weights), each the mean over the chain's carried frames, per batch
    item. ``memory_warmup`` frames are carried first without gradients or losses, so that the memory the chain
    starts from has been carried as often as a clip's, its drift included (held to the first painting). Only the
    items that carry a painting take part; both are 0 when ``memory_weight`` is."""
    cfg = trainer.cfg
    zero = torch.zeros((), device=output.device)
    paint = pos < len(cfg.style_images)
    if not cfg.memory_weight or not paint.any():
        return {"memory": (cfg.memory_weight, zero), "carried": (1.0, zero)}
    frames, painted, mine, placed = content[paint], output[paint], weights[paint], pos[paint]
    memory = carried = zero
    everyone = torch.ones(len(frames), dtype=torch.bool, device=output.device)
    held: Held | None = None
    for _ in range(cfg.memory_warmup):  # carried again and again as along a clip, learning from none of it
        pair = carried_pair(frames, painted, trainer.rng, cfg.memory_flow_error, flow=cfg.memory_flow, held=held)
        with torch.no_grad(), autocast_for(trainer.device, cfg.precision, "net"):
            painted = trainer.model(pair.frame, mine, pair.memory).float()
        frames, held = pair.frame, pair.held
    for _ in range(cfg.memory_chain - 1):
        pair = carried_pair(frames, painted, trainer.rng, cfg.memory_flow_error, flow=cfg.memory_flow, held=held)
        with autocast_for(trainer.device, cfg.precision, "net"):
            painted = trainer.model(pair.frame, mine, pair.memory).float()
        with autocast_for(trainer.device, cfg.precision, "loss"):
            feats = as_float(trainer.vgg(painted))
            with torch.no_grad():
                source = as_float(trainer.vgg(pair.frame))
        memory = memory + carried_loss(painted, pair, everyone, cfg.memory_slack)
        carried = carried + (
            cfg.style_weight * trainer.style_term(feats, placed, scale, len(frames))
            + cfg.content_weight * content_loss(feats[cfg.content_tap], source[cfg.content_tap])
            + cfg.tv_weight * total_variation(painted)
        )
        frames, held = pair.frame, pair.held
    share = float(paint.sum()) / len(paint) / (cfg.memory_chain - 1)
    return {"memory": (cfg.memory_weight, memory * share), "carried": (1.0, carried * share)}
