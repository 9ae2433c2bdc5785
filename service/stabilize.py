"""Temporal stabilization of per-frame stylization: blend in the flow-warped previous output.

After Ruder, Dosovitskiy and Brox, "Artistic style transfer for videos" (GCPR 2016), applied as a
post-process: where the input's optical flow is consistent (not occluded, not leaving the image),
the new output is pulled toward the previous output warped onto the current frame; elsewhere the
fresh stylization stands. Memory decays geometrically, so a few frames of overlap rebuild the state
(the Ray engine relies on that at chunk borders).

When the camera itself moves, the network repaints every frame's strokes in new places, so the
blend averages strokes that do not line up and the painting fades to its colours (benchmark table
13). Then, in proportion to how far the whole frame moved, the blend weakens and the memory first
gets its stroke detail back from the last fresh stylization (``service/detail.py``) and is warped
bicubic, so that warping it again every frame does not blur it; a still camera's frames are left exactly
as the plain blend makes them.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import Literal

import cv2
import numpy as np

from service.detail import restore_detail
from service.flow import FlowEstimator, Preset, source_grid, upscaled_source_maps, warp

Consistency = Literal["photometric", "flow"]
DEFAULT_MOVING_BLEND = 0.7  # for a model with no calibrated value (docs/realtime-design.md)

Interpolation = Literal["linear", "cubic", "lanczos"]
_INTERPOLATIONS = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}


@dataclass(frozen=True)
class StabilizeOptions:
    """``blend``: weight of the warped previous output on consistent pixels (0 = off)."""

    blend: float = 0.9  # the share of the memory where the flow is trusted: higher is steadier and smears more
    preset: Preset = "fast"
    feather: int = 5  # px of Gaussian softening on the mask's edges, so occlusions leave no seams
    flow_scale: float = 0.5  # flow and its consistency check run at this scale (a quarter of the pixels)
    # Which pixels to trust: "photometric" (one flow; the warped previous input must match the new one
    # within ``photometric_tolerance`` grey levels) or "flow" (forward and backward flow must cancel:
    # the metric's own check, twice the flow cost).
    consistency: Consistency = "photometric"
    photometric_tolerance: float = 16.0
    # Under camera motion (fully from a median flow of ``camera_motion_px``, in proportion below it), the
    # memory's stroke detail is raised toward ``detail_target`` x the last fresh stylization's (0 = never)
    # and the blend is at most ``moving_blend``, so the painting is not averaged away while the view moves. A
    # still camera's frames are exactly the plain blend's (docs/realtime-design.md).
    detail_target: float = 1.5
    # None: the model's calibrated value (its manifest entry's ``moving_blend``, see ``calibrated``), else 0.7.
    moving_blend: float | None = None
    camera_motion_px: float = 2.0
    # How the memory is warped while the camera moves. It is warped again every frame, so the interpolation
    # compounds: a bilinear warp by half a pixel is a [0.5, 0.5] blur that softens the strokes within a few
    # frames, and bicubic keeps them. A still camera's memory is always warped bilinear: there the offsets are
    # the flow's sub-pixel noise, which bicubic would keep as flicker. Measured in docs/realtime-design.md.
    moving_warp: Interpolation = "cubic"

    def __post_init__(self) -> None:
        if not 0.0 <= self.blend < 1.0:
            raise ValueError(f"stabilization blend must be in [0, 1), got {self.blend}")
        if not 0.1 <= self.flow_scale <= 1.0:
            raise ValueError(f"flow scale must be in [0.1, 1], got {self.flow_scale}")
        if self.feather < 0:
            raise ValueError(f"feather must be >= 0, got {self.feather}")
        if self.consistency not in ("photometric", "flow"):
            raise ValueError(f"consistency must be 'photometric' or 'flow', got {self.consistency!r}")
        if not self.photometric_tolerance > 0:
            raise ValueError(f"photometric tolerance must be > 0, got {self.photometric_tolerance}")
        if not 0.0 <= self.detail_target <= 4.0:
            raise ValueError(f"detail target must be in [0, 4], got {self.detail_target}")
        if self.moving_blend is not None and not 0.0 <= self.moving_blend < 1.0:
            raise ValueError(f"moving blend must be in [0, 1), got {self.moving_blend}")
        if not self.camera_motion_px > 0:
            raise ValueError(f"camera motion scale must be > 0 px, got {self.camera_motion_px}")
        if self.moving_warp not in _INTERPOLATIONS:
            raise ValueError(f"moving warp must be one of {sorted(_INTERPOLATIONS)}, got {self.moving_warp!r}")

    def calibrated(self, moving_blend: float | None) -> StabilizeOptions:
        """These options for a model whose calibrated moving blend is ``moving_blend`` (None: none): it fills
        a moving blend left unset, never one that was chosen."""
        if self.moving_blend is not None or moving_blend is None:
            return self
        return replace(self, moving_blend=moving_blend)


@dataclass(frozen=True)
class Motion:
    """What stabilizing one frame needs besides its stylization; it depends only on the input frames and
    the previous output, so it can be found while the network still runs (``Stabilizer.motion``)."""

    small: np.ndarray  # this input at flow scale: the next frame's flow starts from it
    warped: np.ndarray | None  # the previous output on this frame's grid (None: nothing to pull toward)
    keep: np.ndarray | None  # HxW float32 weight of ``warped``: blend on trusted pixels, 0 elsewhere


class Stabilizer:
    """Feed frames in order; ``step`` returns the stabilized output of each. One per sequence.

    ``step`` is ``blend(motion(input), stylized)``. The two halves let the flow and the warp (most of
    the cost) overlap the network: call ``motion`` for frame t on another thread while frame t is
    stylized, after frame t-1's ``blend``; ``overlapped`` does exactly that.
    """

    def __init__(self, options: StabilizeOptions) -> None:
        self.options = options
        self._flow = FlowEstimator(options.preset)
        self._previous_input: np.ndarray | None = None
        self._previous_output: np.ndarray | None = None
        self._previous_fresh: np.ndarray | None = None  # the last stylization before blending

    def step(self, input_rgb: np.ndarray, stylized_rgb: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 input and its stylization (same size) -> stabilized HxWx3 uint8."""
        return self.blend(self.motion(input_rgb), stylized_rgb)

    def overlapped(self, input_rgb: np.ndarray, stylize: Callable[[], np.ndarray], pool: Executor) -> np.ndarray:
        """``step(input_rgb, stylize())`` with the motion found in ``pool`` while ``stylize`` runs here:
        with ONNX Runtime on one core, the flow and the warp take another instead of adding to the frame."""
        motion = pool.submit(self.motion, input_rgb)
        try:
            stylized = stylize()
        finally:
            found = motion.result()  # waited for even when stylizing failed: never two frames in flight
        return self.blend(found, stylized)

    def motion(self, input_rgb: np.ndarray) -> Motion:
        """Flow from the previous input, where it is trusted, and the previous output warped along it.

        Everything at full resolution stays uint8 (the warp); only the small flow grid and the
        weights are float. Reads the stabilizer's memory without changing it.
        """
        height, width = input_rgb.shape[:2]
        small = self._for_flow(input_rgb)
        previous, previous_input = self._previous_output, self._previous_input
        if previous is None or previous_input is None or previous.shape[:2] != (height, width):
            return Motion(small, None, None)
        backward, valid = self._trusted_flow(previous_input, small)
        moving = self._camera_motion(backward)
        previous = self._with_detail(previous, moving)
        blend = self.options.blend
        if moving:
            moving_blend = self.options.moving_blend
            blend -= moving * max(0.0, blend - (DEFAULT_MOVING_BLEND if moving_blend is None else moving_blend))
        mask: np.ndarray = valid.astype(np.float32)
        if self.options.feather:
            radius = max(1, round(self.options.feather * self.options.flow_scale))
            mask = cv2.GaussianBlur(mask, (2 * radius + 1, 2 * radius + 1), 0) * mask
        interpolation = _INTERPOLATIONS[self.options.moving_warp if moving else "linear"]
        if mask.shape != (height, width):
            mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
            maps = upscaled_source_maps(backward, height, width)
            warped = cv2.remap(previous, maps, None, interpolation, borderMode=cv2.BORDER_REPLICATE)  # type: ignore[call-overload]
        else:
            warped = warp(previous, backward, interpolation)
        return Motion(small, warped, blend * mask)

    def blend(self, motion: Motion, stylized_rgb: np.ndarray) -> np.ndarray:
        """The stylization pulled toward the warped previous output where the motion trusts it (one
        OpenCV per-pixel weighted sum); remembers the result for the next frame."""
        stylized = np.ascontiguousarray(stylized_rgb, dtype=np.uint8)
        if motion.warped is None or motion.keep is None or motion.warped.shape != stylized.shape:
            output = stylized
        else:
            output = np.asarray(cv2.blendLinear(motion.warped, stylized, motion.keep, 1.0 - motion.keep), np.uint8)
        self._previous_input = motion.small
        self._previous_output = output
        self._previous_fresh = stylized
        return output

    def _camera_motion(self, backward: np.ndarray) -> float:
        """How much the whole frame moved, in [0, 1]: the median flow over ``camera_motion_px``; 0 below a
        twentieth of it (a still camera: its blended strokes line up, nothing to give back)."""
        moved = float(np.median(cv2.magnitude(backward[..., 0], backward[..., 1]))) / self.options.flow_scale
        share = min(1.0, moved / self.options.camera_motion_px)
        return share if share >= 0.05 else 0.0

    def _with_detail(self, previous: np.ndarray, moving: float) -> np.ndarray:
        """The memory with its stroke detail given back in proportion to the camera's motion."""
        fresh, target = self._previous_fresh, self.options.detail_target
        if not moving or target == 0.0 or fresh is None:  # (fresh always has the memory's shape: blend sets both)
            return previous
        restored = restore_detail(previous, fresh, target)
        return restored if moving == 1.0 else np.asarray(cv2.addWeighted(restored, moving, previous, 1.0 - moving, 0.0))

    def _trusted_flow(self, previous_rgb: np.ndarray, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Backward flow (t -> t-1) on the flow grid and where it can be trusted."""
        if self.options.consistency == "flow":
            pair = self._flow.pair(previous_rgb, rgb)
            return pair.backward, pair.valid
        previous_grey = cv2.cvtColor(previous_rgb, cv2.COLOR_RGB2GRAY)
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        backward = self._flow.backward(grey, previous_grey)
        map_x, map_y = source_grid(backward)
        arrived = cv2.remap(previous_grey, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        h, w = grey.shape
        inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
        return backward, (cv2.absdiff(arrived, grey) <= self.options.photometric_tolerance) & inside

    def _for_flow(self, rgb: np.ndarray) -> np.ndarray:
        scale = self.options.flow_scale
        if scale == 1.0:
            return rgb
        height, width = rgb.shape[:2]
        size = (max(8, round(width * scale)), max(8, round(height * scale)))
        return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
