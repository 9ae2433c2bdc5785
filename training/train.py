"""Train a multi-style network (all styles at once) or add styles to a trained one.

Each step takes a batch of random content crops, gives each item one style (one-hot weights), and
minimises content + style + total-variation losses measured by the VGG19 trunk.

A style is a painting (match its Gram matrices) or a dream (``dream_<layer>``: amplify that VGG19
layer's activations, DeepDream's objective, as a feed-forward style). Both kinds are rows of the same
conditional instance norms, so a dream blends with the paintings like any other style.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from service.contract import DREAM_PREFIX
from training import images
from training.carry import FLOWS, carried_terms
from training.checkpoint import (
    CheckpointError,
    build_from_checkpoint,
    copy_matching,
    extend_styles,
    load_checkpoint,
    save_checkpoint,
)
from training.features import CONTENT_TAP, STYLE_TAPS, layer_names, load_vgg
from training.loop import as_float, autocast_for, optimizer_groups, run_steps, set_rates
from training.losses import (
    camera_grid,
    content_loss,
    feature_motion_penalty,
    gram,
    grid_penalty,
    handheld_move,
    log_activation_gain,
    motion_penalty,
    per_item_style_loss,
    shift_penalty,
    smooth_bend,
    total_variation,
)
from training.networks import NetConfig, StyleNet, count_parameters, tier_config
from training.run import RunConfig, RunStart

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TrainConfig(RunConfig):
    """Everything a training run needs: the shared run settings plus styles and losses; built by the CLI,
    stored in the checkpoint."""

    style_images: tuple[Path, ...]
    dream_layers: tuple[str, ...] = ()  # one dream style per layer, after the paintings
    content_weight: float = 1.0
    style_weight: float = 3e-6
    tv_weight: float = 1e2
    # Weight of the mesh penalty (training/losses.py grid_penalty): spikes at 2- and 4-pixel periods in the
    # output's spectrum, relative to their neighbourhood. 0: off.
    grid_weight: float = 0.0
    grid_periods: int = 4  # 8: the penalty also takes the 8-pixel periods (bins at eighths of a side)
    # Weight of the shift penalty (training/losses.py shift_penalty): the output of a frame moved by 1-7 pixels
    # against the output moved; kills patterns locked to the stride grid. 0: off.
    shift_weight: float = 0.0
    # Weight of the camera-motion penalty (training/losses.py motion_penalty): the output of a frame moved up to
    # 6 px, turned up to 1 degree and zoomed up to 2%, as a hand-held camera's next frame, against the output
    # warped the same: strokes that follow the camera, which the stabilizer can then keep. 0: off.
    motion_weight: float = 0.0
    # px of smooth non-rigid displacement added to each move (training/losses.py smooth_bend), up to this much:
    # a real camera's flow is not one rigid move (parallax, subjects that move). 0: rigid moves only.
    motion_bend: float = 0.0
    # Weight of the same camera-motion penalty on the features the decoder starts from (training/losses.py
    # feature_motion_penalty; relative to their mean square): steadiness that cannot come from painting less. 0: off.
    motion_feature_weight: float = 0.0
    # The output's motion penalty relative to its variance (training/losses.py motion_penalty ``relative``): a
    # network cannot pass it by painting with less contrast, which the absolute one rewards.
    motion_relative: bool = False
    # Weight of the carried term (training/carry.py): a network with a memory (NetConfig.memory, added when this is
    # not 0) paints a moved frame with its last painting carried along a noisy flow, held to that painting where
    # the memory is trusted. ``memory_chain`` frames in a row (the memory of each the painting before it, so that
    # carrying again and again is learned); the flow is up to ``memory_flow_error`` px wrong. 0: off.
    memory_weight: float = 0.0
    memory_chain: int = 2
    memory_warmup: int = 0  # frames carried before the chain, without gradients (training/carry.py)
    memory_slack: int = 0  # px a stroke may stand off its carried place (carry.nearest_squared)
    memory_flow_error: float = 1.0
    memory_flow: str = "noisy"  # how the memory is carried: the true move bent by the error, or the stabilizer's flow
    memory_gate: bool = False  # a fresh memory network also blends the carried RGB into its output (NetConfig)
    dream_weights: tuple[float, ...] = (3e5,)  # per unit of log activation gain: one for all, or one per layer
    style_size: int = 256  # the painting's short side: with scene_size 480, strokes for the 640x480 frame
    # More (scene_size, style_size) pairs, taken in turn with the main one, one per step: strokes right at
    # several frame sizes (e.g. (256, 256) beside 480/480 for 256 px stills and 640x480 frames).
    also_at: tuple[tuple[int, int], ...] = ()
    style_taps: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
    content_tap: str = CONTENT_TAP
    resume: Path | None = None
    new_styles_only: bool = False  # add-style: train only the new styles' gamma/beta
    only_styles: tuple[str, ...] = ()  # with resume: train only these styles' gamma/beta (convolutions frozen)

    def __post_init__(self) -> None:
        super().__post_init__()
        penalties = (self.grid_weight, self.shift_weight, self.motion_weight, self.motion_feature_weight)
        memory = (self.memory_weight, self.memory_flow_error)
        if min(self.content_weight, self.style_weight, self.tv_weight, *penalties, *memory, *self.dream_weights) < 0:
            raise ValueError("loss weights must be non-negative")
        if not self.motion_bend >= 0:
            raise ValueError(f"--motion-bend must be >= 0 px, got {self.motion_bend}")
        if self.motion_relative and not self.motion_weight:
            raise ValueError("--motion-relative changes how the motion penalty is measured: give --motion-weight too")
        if self.memory_gate and not self.memory_weight:
            raise ValueError("--memory-gate is part of a memory network: give --memory-weight too")
        if self.memory_flow not in FLOWS:
            raise ValueError(f"--memory-flow must be one of {FLOWS}, got {self.memory_flow!r}")
        if not 0 <= self.memory_warmup <= 32:
            raise ValueError(f"--memory-warmup must be 0 to 32 frames, got {self.memory_warmup}")
        if not 0 <= self.memory_slack <= 3:
            raise ValueError(f"--memory-slack must be 0 to 3 px, got {self.memory_slack}")
        if self.memory_chain < 2:
            raise ValueError(f"--memory-chain must be at least 2 frames, got {self.memory_chain}")
        if self.grid_periods not in (4, 8):
            raise ValueError(f"--grid-periods must be 4 or 8, got {self.grid_periods}")
        if len(self.dream_weights) not in (1, max(1, len(self.dream_layers))):
            raise ValueError(f"give one dream weight, or one per dream layer ({len(self.dream_layers)})")
        if self.only_styles and (self.resume is None or self.new_styles_only):
            raise ValueError("--only-styles retrains styles of an existing checkpoint: give --resume-from")
        if any(scene < 0 or style < 16 for scene, style in self.also_at):
            raise ValueError(f"--also-at: scene sizes must be >= 0 and style sizes >= 16, got {self.also_at}")
        if not self.style_images and not self.dream_layers:
            raise ValueError("at least one style image or dream layer is needed")
        bad = [t for t in self.style_taps if t not in STYLE_TAPS]
        if bad:
            raise ValueError(f"unknown style layer(s) {bad}; choose from {STYLE_TAPS}")
        relus = [n for n in layer_names() if n.startswith("relu")]
        bad = [t for t in self.dream_layers if t not in relus]
        if bad:
            raise ValueError(f"unknown dream layer(s) {bad}; choose from {', '.join(relus)}")

    @property
    def scales(self) -> list[tuple[int, int]]:
        """Every (scene_size, style_size) the run trains at, the main one first."""
        return [(self.scene_size, self.style_size), *self.also_at]

    @property
    def style_names(self) -> list[str]:
        """Names of the styles this config trains, in order: painting stems, then ``dream_<layer>``."""
        names = [Path(p).stem for p in self.style_images] + [DREAM_PREFIX + t for t in self.dream_layers]
        if len(set(names)) != len(names):
            raise ValueError(f"style names (file stems) must be unique: {names}")
        return names


PENALTY_COLUMNS = ("grid", "shift", "motion", "motion_features", "memory", "carried")
LOG_COLUMNS = ("content", "style", "tv", "dream", *PENALTY_COLUMNS, "total")


class StyleTargets:
    """Gram matrices of each style image at the style taps, computed once: {tap: [S,C,C]}."""

    def __init__(
        self, vgg: nn.Module, style_images: tuple[Path, ...], taps: tuple[str, ...], size: int, device: torch.device
    ) -> None:
        grams: dict[str, list[torch.Tensor]] = {t: [] for t in taps}
        with torch.no_grad():
            for path in style_images:
                feats = vgg(images.load_image(path, short_side=size).to(device))
                for t in taps:
                    grams[t].append(gram(feats[t])[0])
        self.grams = {t: torch.stack(g) for t, g in grams.items() if g}  # none when only dreams train

    def for_items(self, style_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        return {t: g[style_ids] for t, g in self.grams.items()}


class Trainer:
    """Owns the network, loss network, style targets, optimizer and data for one run."""

    def __init__(self, cfg: TrainConfig, rank: int = 0, world_size: int = 1, design: NetConfig | None = None) -> None:
        """``rank``/``world_size`` > 1 when launched by torchrun (the process group is already set up);
        ``design``: a fresh network of this architecture instead of the tier's (the design study)."""
        self.cfg = cfg
        self.rank, self.world = rank, world_size
        self.start = RunStart.of(cfg, rank)
        self.device, self.rng = self.start.device, self.start.rng
        self.step = 0
        self.optimizer_state: dict[str, Any] | None = None  # Adam's, carried on when the parameter groups match
        if cfg.resume is not None and Path(cfg.resume).exists():
            net, styles, self.train_ids = self._resumed(load_checkpoint(cfg.resume))
        elif cfg.new_styles_only:
            raise CheckpointError("add-style needs an existing checkpoint (--checkpoint)")
        else:
            net, styles, self.train_ids = self._fresh(design)
        self.styles = styles
        if cfg.memory_weight and not net.config.memory:
            raise CheckpointError(f"{cfg.resume}: a network without a memory; start one with --init-from it")
        self.net = net.to(self.device).train()
        taps = tuple(dict.fromkeys((*cfg.style_taps, cfg.content_tap, *cfg.dream_layers)))
        self.vgg = load_vgg(taps, cfg.vgg_weights).to(self.device)
        self.targets = [
            StyleTargets(self.vgg, cfg.style_images, cfg.style_taps, size, self.device) for _, size in cfg.scales
        ]  # one set per scale, in cfg.scales order
        self.target_offset = len(styles) - len(cfg.style_names)  # style id -> position in cfg.style_names
        self.optimizer = self._make_optimizer()
        self.model: nn.Module = self.net
        # The decoder's input of every pass, in order, while the feature motion penalty is on (cleared each step).
        self._inner: list[torch.Tensor] = []
        if cfg.motion_feature_weight:
            self.net.bottleneck().register_forward_hook(lambda _module, _inputs, out: self._inner.append(out))
        if self.world > 1:
            self.model = nn.parallel.DistributedDataParallel(self.net, find_unused_parameters=self.norms_only)

    def _resumed(self, ckpt: dict[str, Any]) -> tuple[StyleNet, list[str], list[int]]:
        """A checkpoint carried on: new styles appended after its own (``--new-styles-only``: only they learn;
        else the same styles, or the same followed by new ones, and every weight keeps learning)."""
        cfg, new_styles = self.cfg, self.cfg.style_names
        net, styles = build_from_checkpoint(ckpt)
        if cfg.new_styles_only:
            clash = set(styles) & set(new_styles)
            if clash:
                raise ValueError(f"checkpoint already has style(s) {sorted(clash)}")
            return (
                extend_styles(net, len(new_styles)),
                styles + new_styles,
                list(range(len(styles), len(styles) + len(new_styles))),
            )
        grows = len(new_styles) > len(styles) and new_styles[: len(styles)] == styles
        if styles != new_styles and not grows:
            raise CheckpointError(
                f"checkpoint styles {styles} differ from the given styles {new_styles} "
                "(give the same styles, or the same ones followed by new ones)"
            )
        if grows:
            log.info("adding styles %s; all weights keep training", new_styles[len(styles) :])
            net, styles = extend_styles(net, len(new_styles) - len(styles)), new_styles
        elif not cfg.only_styles:  # the same parameter groups: Adam carries on
            self.optimizer_state = ckpt.get("optimizer")
        self.step = int(ckpt["step"])
        return net, styles, self._chosen_ids(styles)

    def _fresh(self, design: NetConfig | None) -> tuple[StyleNet, list[str], list[int]]:
        """A new network of the tier's (or ``design``'s) architecture, its matching tensors copied from
        ``--init-from`` when given."""
        cfg, styles = self.cfg, self.cfg.style_names
        config = design or tier_config(cfg.tier, len(styles))
        grown = {"memory": True, "memory_gate": cfg.memory_gate}
        net = StyleNet(NetConfig.from_json(config.to_json() | grown) if cfg.memory_weight else config)
        if cfg.init_from is not None:
            source, source_styles = build_from_checkpoint(load_checkpoint(cfg.init_from))
            if source_styles != styles:
                raise CheckpointError(f"{cfg.init_from}: styles {source_styles} differ from the given {styles}")
            copied = copy_matching(net, source)
            log.info("starting with %d of %d tensors from %s", len(copied), len(net.state_dict()), cfg.init_from)
        return net, styles, list(range(len(styles)))

    @property
    def norms_only(self) -> bool:
        return self.cfg.new_styles_only or bool(self.cfg.only_styles)

    def _chosen_ids(self, styles: list[str]) -> list[int]:
        unknown = [s for s in self.cfg.only_styles if s not in styles]
        if unknown:
            raise ValueError(f"--only-styles: {unknown} not in the checkpoint's styles {styles}")
        return sorted(styles.index(s) for s in self.cfg.only_styles) or list(range(len(styles)))

    def _make_optimizer(self) -> torch.optim.Optimizer:
        if not self.norms_only:
            opt = torch.optim.Adam(optimizer_groups(self.net, self.cfg.lr, self.cfg.norm_lr_scale))
            if self.optimizer_state is not None:
                try:
                    opt.load_state_dict(self.optimizer_state)
                except ValueError:
                    log.warning("optimizer state does not fit the parameter groups; starting Adam afresh")
                set_rates(opt, self.cfg.lr, self.cfg.norm_lr_scale)
            return opt
        # Only the trained styles' rows of every gamma/beta learn; convolutions and other styles are frozen.
        self.net.requires_grad_(False)
        rows = torch.zeros(len(self.styles), 1, device=self.device)
        rows[self.train_ids] = 1.0
        params = []
        for norm in self.net.norms():
            for p in (norm.gamma, norm.beta):
                p.requires_grad_(True)
                p.register_hook(lambda g: g * rows.to(g.dtype))
                params.append(p)
        return torch.optim.Adam(params, lr=self.cfg.lr * self.cfg.norm_lr_scale)

    def batch(self, scene: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        crops = self.start.crops(self.cfg, scene)
        ids = torch.tensor([self.rng.choice(self.train_ids) for _ in range(len(crops))])
        return crops, ids

    def train_step(self) -> dict[str, float]:
        """One optimiser step on a batch at this step's scale; returns every term (unweighted) and the total."""
        cfg = self.cfg
        scale = self.step % len(cfg.scales)
        content, ids = self.batch(cfg.scales[scale][0])
        weights = torch.nn.functional.one_hot(ids, len(self.styles)).float().to(self.device)
        self._inner.clear()
        with autocast_for(self.device, cfg.precision, "net"):
            output = self.model(content, weights).float()
        inner = self._inner[0] if self._inner else None
        with autocast_for(self.device, cfg.precision, "loss"):
            feats = self.vgg(output)
            with torch.no_grad():
                source_feats = self.vgg(content)
        feats, source_feats = as_float(feats), as_float(source_feats)
        pos = (ids - self.target_offset).to(self.device)  # each item's painting (or dream layer after them)
        gain, weighted_gain = self.dream_terms(feats, source_feats, pos, len(ids))
        zero = torch.zeros((), device=self.device)
        motion, motion_features = self.motion_terms(content, weights, output, inner, pos < len(cfg.style_images))
        terms = {  # name -> (weight, unweighted term); grid, shift and motion cost nothing when weighted 0
            "content": (cfg.content_weight, content_loss(feats[cfg.content_tap], source_feats[cfg.content_tap])),
            "style": (cfg.style_weight, self.style_term(feats, pos, scale, len(ids))),
            "tv": (cfg.tv_weight, total_variation(output)),
            "grid": (cfg.grid_weight, grid_penalty(output, cfg.grid_periods) if cfg.grid_weight else zero),
            "shift": (cfg.shift_weight, self.shift_term(content, weights, output)),
            "motion": (cfg.motion_weight, motion),
            "motion_features": (cfg.motion_feature_weight, motion_features),
            **carried_terms(self, content, weights, output, pos, scale),
        }
        total = sum((weight * term for weight, term in terms.values()), start=zero) - weighted_gain
        if not torch.isfinite(total):
            raise FloatingPointError(f"loss became {float(total)} at step {self.step}; lower --lr")
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        self.step += 1
        return {**{name: term.item() for name, (_, term) in terms.items()}, "dream": gain.item(), "total": total.item()}

    def style_term(self, feats: dict[str, torch.Tensor], pos: torch.Tensor, scale: int, items: int) -> torch.Tensor:
        """The Gram style loss of the batch items that carry a painting, per batch item."""
        paint = pos < len(self.cfg.style_images)
        if not paint.any():
            return torch.zeros((), device=self.device)
        targets = self.targets[scale].for_items(pos[paint])
        taps = self.cfg.style_taps
        return per_item_style_loss({t: feats[t][paint] for t in taps}, targets, taps).sum() / items

    def dream_terms(
        self, feats: dict[str, torch.Tensor], source_feats: dict[str, torch.Tensor], pos: torch.Tensor, items: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The summed log activation gains of the dream items (per batch item), plain and weighted per layer."""
        cfg = self.cfg
        gain = weighted = torch.zeros((), device=self.device)
        for j, layer in enumerate(cfg.dream_layers):
            chosen = pos == len(cfg.style_images) + j
            if chosen.any():
                item_gain = log_activation_gain(feats[layer][chosen], source_feats[layer][chosen]).sum() / items
                gain = gain + item_gain
                weighted = weighted + cfg.dream_weights[min(j, len(cfg.dream_weights) - 1)] * item_gain
        return gain, weighted

    def shift_term(self, content: torch.Tensor, weights: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        """The shift penalty for a random move of 1-7 pixels in each direction (0 when its weight is 0)."""
        if not self.cfg.shift_weight:
            return torch.zeros((), device=self.device)
        multiple = self.net.config.size_multiple
        shift = (self.rng.randrange(1, multiple), self.rng.randrange(1, multiple))
        with autocast_for(self.device, self.cfg.precision, "net"):
            return shift_penalty(lambda x: self.model(x, weights).float(), content, output, shift, multiple)

    def motion_terms(
        self,
        content: torch.Tensor,
        weights: torch.Tensor,
        output: torch.Tensor,
        inner: torch.Tensor | None,
        paint: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The camera-motion penalty for a random hand-held move over the batch items that carry a painting, per
        batch item, on the output and on the decoder's input (``inner``: the batch's, from the same pass as
        ``output``; None when the feature term is off); 0 where a weight is 0. Dream items are left out: their loss
        wants the output to differ from the photo, and held to follow the camera as well they wash out to grey."""
        zero = torch.zeros((), device=self.device)
        cfg = self.cfg
        if not (cfg.motion_weight or cfg.motion_feature_weight) or not paint.any():
            return zero, zero
        r = self.rng
        move = handheld_move(r)
        mine = paint.to(content.device)
        frames = content[mine]
        bend = None
        if cfg.motion_bend:
            (height, width), drawn = frames.shape[-2:], torch.Generator().manual_seed(r.getrandbits(63))
            bend = smooth_bend(len(frames), height, width, r.uniform(0.0, cfg.motion_bend), drawn)
        share = int(mine.sum()) / len(paint)
        with autocast_for(self.device, cfg.precision, "net"):
            penalty = motion_penalty(
                lambda x: self.model(x, weights[mine]).float(),
                frames,
                output[mine],
                move,
                bend=bend,
                relative=cfg.motion_relative,
            )
        if inner is None or not cfg.motion_feature_weight:
            return penalty * share, zero
        grid = camera_grid(frames, move, bend)
        return penalty * share, feature_motion_penalty(self._inner[-1].float(), inner[mine].float(), grid) * share

    def preview(self, path: Path) -> None:
        """One row per preview photo: the photo, then each trained style, then a 50/50 blend."""
        if not self.cfg.preview_images:
            return
        self.net.eval()
        rows = []
        with torch.no_grad():
            for p in self.cfg.preview_images:
                photo = images.load_image(p, short_side=256, square=True).to(self.device)
                row = [images.to_image(photo)]
                for i in self.train_ids:
                    w = torch.nn.functional.one_hot(torch.tensor([i]), len(self.styles)).float().to(self.device)
                    row.append(images.to_image(self.net.stylize_any_size(photo, w)))
                if len(self.train_ids) >= 2:  # first and last style half and half: painting + dream if any
                    w = torch.zeros(1, len(self.styles), device=self.device)
                    w[0, self.train_ids[0]] = w[0, self.train_ids[-1]] = 0.5
                    row.append(images.to_image(self.net.stylize_any_size(photo, w)))
                rows.append(row)
        self.net.train()
        images.save_png(images.grid(rows, cell=160), path)

    def run(self) -> dict[str, float]:
        cfg = self.cfg
        if self.rank == 0:
            log.info(
                "%s: %d parameters, styles %s, %d content images, from step %d",
                cfg.tier,
                count_parameters(self.net),
                self.styles,
                len(self.start.content_files),
                self.step,
            )
        loop = cfg.loop_plan(LOG_COLUMNS, ("content", "style"), f"train {cfg.tier}", main=self.rank == 0)
        return run_steps(
            loop,
            self,
            lambda ema: save_checkpoint(
                cfg.out_dir / "checkpoint.pt", self.net, self.styles, self.step, cfg, self.optimizer, ema
            ),
        )
