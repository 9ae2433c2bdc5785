"""The one engine behind the offline tools: optimise an image's pixels through a fixed network.

A method (Gatys, texture, inversion, DeepDream) is only an objective: a function from an image
[1,3,h,w] in [0,1] to named loss terms. This module owns everything else: the parameterization,
L-BFGS / Adam / SGD, the regularizers (total variation, L2, jitter, blur every N, pixel clipping),
the coarse-to-fine octave schedule, progress, snapshots and the animated GIF. Gradient ascent on
pixels as in Simonyan et al. (2014) and Mordvintsev et al. (2015); octaves as in DeepDream.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from tqdm import tqdm

from training.images import save_png, to_image
from training.losses import total_variation

log = logging.getLogger(__name__)

Objective = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]
"""Image [1,3,h,w] in [0,1] -> named, already weighted loss terms (their sum is minimised)."""
ObjectiveAt = Callable[[tuple[int, int]], Objective]
"""Builds the objective for one octave's (height, width): targets are resized to match."""

OPTIMIZERS = ("lbfgs", "adam", "sgd")
PARAMETERIZATIONS = ("pixels", "sigmoid")
CARRIES = ("image", "detail")
MEMORY_FACTOR = 1.5  # VGG19 forward+backward peaks at about 1.0x its activation bytes (CPU, measured); margin


class ImageTooLargeError(ValueError):
    """The requested size will not fit in the device's free memory."""


@dataclass(frozen=True)
class OptimConfig:
    """How to optimise: built once at the entry point, shared by every method."""

    iterations: tuple[int, ...] = (100,)  # per octave, coarse to fine; one value applies to every octave
    optimizer: str = "lbfgs"
    lr: float = 1.0
    parameterization: str = "pixels"  # pixels (clipped to [0,1]) or sigmoid of free logits
    tv_weight: float = 0.0
    l2_weight: float = 0.0  # pull towards mid-grey
    jitter: int = 0  # random shift of up to this many pixels before each evaluation
    blur_every: int = 0
    blur_sigma: float = 0.5
    clip: bool = True
    normalize_grad: bool = False  # divide the gradient by its mean absolute value (DeepDream)
    octaves: int = 1
    octave_scale: float = 2.0
    carry: str = "image"  # what moves up an octave: the whole image, or only the detail added to it
    snapshot_every: int = 0
    snapshot_dir: Path | None = None
    gif_path: Path | None = None
    seed: int = 0
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
        if self.parameterization not in PARAMETERIZATIONS:
            raise ValueError(
                f"unknown parameterization {self.parameterization!r}; choose from {', '.join(PARAMETERIZATIONS)}"
            )
        if self.carry not in CARRIES:
            raise ValueError(f"unknown octave carry {self.carry!r}; choose from {', '.join(CARRIES)}")
        if self.octaves < 1 or self.octave_scale <= 1.0:
            raise ValueError("octaves must be >= 1 and the octave scale > 1")
        if len(self.iterations) not in (1, self.octaves) or min(self.iterations) < 0:
            raise ValueError(f"give one iteration count or one per octave ({self.octaves}), all >= 0")
        if self.lr <= 0 or min(self.tv_weight, self.l2_weight, self.blur_sigma) < 0:
            raise ValueError("the learning rate must be > 0 and regularizer weights >= 0")
        if min(self.jitter, self.blur_every, self.snapshot_every) < 0:
            raise ValueError("jitter, blur-every and snapshot-every must be >= 0")
        if self.optimizer == "lbfgs" and (self.jitter or self.normalize_grad):
            raise ValueError(
                "jitter and gradient normalization need --optimizer adam or sgd "
                "(L-BFGS's line search needs a fixed objective)"
            )

    def iterations_at(self, octave: int) -> int:
        return self.iterations[0] if len(self.iterations) == 1 else self.iterations[octave]

    def for_run(self, name: str) -> OptimConfig:
        """The same settings with snapshots and GIF named after one of several runs."""
        gif = self.gif_path.with_name(f"{self.gif_path.stem}_{name}.gif") if self.gif_path else None
        folder = self.snapshot_dir / name if self.snapshot_dir else None
        return replace(self, snapshot_dir=folder, gif_path=gif)


@dataclass
class OptimResult:
    """The optimised image and what happened on the way."""

    image: torch.Tensor  # [1,3,H,W] in [0,1], on the CPU
    history: list[float] = field(default_factory=list)  # total loss at every objective evaluation
    final_terms: dict[str, float] = field(default_factory=dict)  # each term at the result
    snapshots: list[Path] = field(default_factory=list)
    gif: Path | None = None
    seconds_per_iteration: dict[str, float] = field(default_factory=dict)  # by octave "WxH"


def octave_sizes(size: tuple[int, int], octaves: int, scale: float) -> list[tuple[int, int]]:
    """(h, w) of each octave, coarsest first; the last is exactly ``size``."""
    h, w = size
    return [(max(1, round(h / scale**k)), max(1, round(w / scale**k))) for k in range(octaves - 1, -1, -1)]


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of [B,C,h,w], antialiased when shrinking."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = image.shape[1]
    out = F.pad(image, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


class ImageParam:
    """The free variable behind the image: raw pixels, or logits whose sigmoid is the image."""

    def __init__(self, image: torch.Tensor, kind: str) -> None:
        self.kind = kind
        self.tensor = torch.zeros_like(image).requires_grad_(True)
        self.set(image)

    def image(self) -> torch.Tensor:
        return torch.sigmoid(self.tensor) if self.kind == "sigmoid" else self.tensor

    @torch.no_grad()
    def set(self, image: torch.Tensor) -> None:
        if self.kind == "sigmoid":
            image = torch.logit(image.clamp(1e-3, 1 - 1e-3))
        self.tensor.copy_(image)


def _optimizer(cfg: OptimConfig, params: list[torch.Tensor], chunk: int) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr)
    return torch.optim.LBFGS(
        params,
        lr=cfg.lr,
        max_iter=chunk,
        history_size=50,
        tolerance_grad=0.0,
        tolerance_change=0.0,
        line_search_fn="strong_wolfe",
    )


class _Run:
    """One optimisation: the octave loop and per-step bookkeeping."""

    def __init__(self, objective_at: ObjectiveAt, init: torch.Tensor, cfg: OptimConfig) -> None:
        self.objective_at, self.cfg = objective_at, cfg
        self.device = torch.device(cfg.device)
        self.init = init.detach().to(self.device, torch.float32)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.result = OptimResult(image=init)
        self.frames: list[Image.Image] = []
        self.step = 0  # across octaves, for snapshot names

    def terms(self, objective: Objective, image: torch.Tensor) -> dict[str, torch.Tensor]:
        shifted = image
        if self.cfg.jitter:
            dy, dx = torch.randint(-self.cfg.jitter, self.cfg.jitter + 1, (2,), generator=self.gen).tolist()
            shifted = torch.roll(image, (dy, dx), dims=(2, 3))
        terms = dict(objective(shifted))
        if self.cfg.tv_weight:
            terms["tv"] = self.cfg.tv_weight * total_variation(image)
        if self.cfg.l2_weight:
            terms["l2"] = self.cfg.l2_weight * torch.mean((image - 0.5) ** 2)
        return terms

    def evaluate(self, objective: Objective, param: ImageParam) -> float:
        loss = torch.stack(list(self.terms(objective, param.image()).values())).sum()
        loss.backward()
        grad = param.tensor.grad
        assert grad is not None
        if self.cfg.normalize_grad:
            grad /= grad.abs().mean() + 1e-12
        value = float(loss.detach())
        self.result.history.append(value)
        return value

    @torch.no_grad()
    def after_steps(self, param: ImageParam, done_before: int, done_after: int) -> None:
        cfg = self.cfg
        if cfg.clip and cfg.parameterization == "pixels":
            param.tensor.clamp_(0.0, 1.0)

        def crossed(every: int) -> bool:
            return bool(every) and done_after // every > done_before // every

        if crossed(cfg.blur_every):
            param.set(gaussian_blur(param.image(), cfg.blur_sigma).clamp(0, 1))
        self.step += done_after - done_before
        if crossed(cfg.snapshot_every):
            self.snapshot(param.image())

    def snapshot(self, image: torch.Tensor) -> None:
        picture = to_image(resize(image.clamp(0, 1), tuple(self.init.shape[-2:])))  # type: ignore[arg-type]
        if self.cfg.snapshot_dir is not None:
            path = self.cfg.snapshot_dir / f"step_{self.step:05d}.png"
            save_png(picture, path)
            self.result.snapshots.append(path)
        self.frames.append(picture)

    def octave(self, objective: Objective, start: torch.Tensor, iterations: int) -> torch.Tensor:
        cfg = self.cfg
        param = ImageParam(start, cfg.parameterization)
        every = [n for n in (cfg.blur_every, cfg.snapshot_every) if n]
        chunk = math.gcd(*every) if every else 20  # L-BFGS runs this many iterations between hooks
        optimizer = _optimizer(cfg, [param.tensor], chunk)
        h, w = start.shape[-2:]
        bar = tqdm(total=iterations, desc=f"{w}x{h}", disable=not cfg.progress, leave=False, unit="it")
        started, done = time.perf_counter(), 0

        def closure() -> float:
            optimizer.zero_grad()
            return self.evaluate(objective, param)

        try:
            while done < iterations:
                if cfg.optimizer == "lbfgs":
                    group = optimizer.param_groups[0]
                    group["max_iter"] = min(chunk, iterations - done)
                    group["max_eval"] = 4 * group["max_iter"]  # let the chunk finish its iterations
                    optimizer.step(closure)
                    step = min(int(optimizer.state[param.tensor]["n_iter"]), iterations) - done
                    if step <= 0:  # converged: L-BFGS made no progress this round
                        break
                else:
                    optimizer.step(closure)
                    step = 1
                self.after_steps(param, done, done + step)
                done += step
                bar.update(step)
                bar.set_postfix(loss=f"{self.result.history[-1]:.4g}")
        finally:
            bar.close()
        if done:
            self.result.seconds_per_iteration[f"{w}x{h}"] = (time.perf_counter() - started) / done
        return param.image().detach().clamp(0, 1)

    def run(self) -> OptimResult:
        cfg = self.cfg
        sizes = octave_sizes(tuple(self.init.shape[-2:]), cfg.octaves, cfg.octave_scale)  # type: ignore[arg-type]
        image = resize(self.init, sizes[0])
        base = image
        for k, size in enumerate(sizes):
            if k:
                if cfg.carry == "detail":
                    new_base = resize(self.init, size)
                    image, base = new_base + resize(image - base, size), new_base
                else:
                    image = resize(image, size)
            image = self.octave(self.objective_at(size), image.clamp(0, 1), cfg.iterations_at(k))
        with torch.no_grad():
            final = self.terms(self.objective_at(sizes[-1]), image)
        self.result.final_terms = {k: float(v) for k, v in final.items()}
        self.result.image = image.cpu()
        if self.frames:
            self.frames.append(to_image(image))
            self.result.gif = self.write_gif()
        return self.result

    def write_gif(self) -> Path | None:
        path = self.cfg.gif_path
        if path is None:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        side = 384  # keep the GIF small; the PNG snapshots keep full size
        frames = []
        for frame in self.frames:
            frame = frame.copy()
            frame.thumbnail((side, side), Image.Resampling.LANCZOS)
            frames.append(frame.quantize(colors=255, method=Image.Quantize.MEDIANCUT))
        durations = [120] * (len(frames) - 1) + [1500]
        tmp = path.with_name(path.name + ".tmp")
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
        tmp.replace(path)
        return path


def optimize(objective_at: ObjectiveAt, init: torch.Tensor, cfg: OptimConfig) -> OptimResult:
    """Minimise the objective's summed terms over the pixels of ``init`` ([1,3,H,W] in [0,1]).

    With ``cfg.octaves`` > 1 it starts at ``init`` shrunk by ``octave_scale ** (octaves-1)`` and works
    up to full size; ``objective_at((h, w))`` is asked for an objective at each octave's size.
    """
    if cfg.snapshot_every and cfg.snapshot_dir is None and cfg.gif_path is None:
        raise ValueError("snapshots need a snapshot folder or a GIF path")
    return _Run(objective_at, init, cfg).run()


def activation_bytes(net: nn.Module, size: tuple[int, int], probe: int = 64) -> int:
    """Bytes of every intermediate output of ``net`` for one [1,3,h,w] image (measured small, scaled)."""
    total = 0

    def count(_module: nn.Module, _inputs: object, output: object) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel() * output.element_size()

    leaves = [m for m in net.modules() if not list(m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        param = next(net.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.no_grad():
            net(torch.zeros(1, 3, probe, probe, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return int(total * size[0] * size[1] / probe**2)


def free_bytes(device: torch.device) -> int:
    """Memory free for new tensors on the device (MemAvailable on the CPU)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 2**62  # unknown platform: do not refuse


def ensure_fits(net: nn.Module, size: tuple[int, int], device: str | torch.device) -> None:
    """Refuse, before any work, an image size whose forward+backward will not fit in free memory."""
    need = MEMORY_FACTOR * activation_bytes(net, size)
    free = free_bytes(torch.device(device))
    if need > free:
        h, w = size
        raise ImageTooLargeError(
            f"a {w}x{h} image needs about {need / 2**30:.1f} GiB on {device} but only "
            f"{free / 2**30:.1f} GiB is free; use a smaller --size"
        )
