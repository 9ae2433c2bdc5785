"""One look pipeline: resize, style or dream, stabilize; used by live streams and video files alike.

A :class:`Painter` owns one stream's memory, the look of its last frame, the dream feedback and the
stabilizer, and is only touched from one thread at a time, frame after frame. ``stylize`` is the
stateless part (thread-safe: the video pipeline runs several at once); ``motion`` and ``finish`` are the
ordered part; ``paint`` is the live sequence, with the optical flow found on another thread while the
network runs (the overlap that keeps steady frames cheap).
"""

from __future__ import annotations

from concurrent.futures import Executor

import cv2
import numpy as np

from service.dream import Dreamer
from service.engine import Engine, resize_to_fit
from service.look import Look
from service.stabilize import Motion, Stabilizer


class Painter:
    """One stream's memory and the per-frame sequence; see the module docstring."""

    def __init__(self, engine: Engine, dreamer: Dreamer | None = None, weights_reset: bool = True) -> None:
        """``weights_reset``: a new blend starts the memory afresh (live: a new look shows at once); a video's
        schedule moves the blend every frame and keeps its stabilizer (False)."""
        self.engine = engine
        self.dreamer = dreamer
        self.weights_reset = weights_reset
        self._key: tuple[object, ...] = ()
        self._stabilizer: Stabilizer | None = None
        self._dreamed: np.ndarray | None = None  # the last dreamed frame, fed back into the next
        self.frames = 0

    def stylize(self, rgb: np.ndarray, look: Look) -> np.ndarray:
        """The network's painting of ``rgb`` (thread-safe, no memory); dreams happen in ``finish``."""
        if look.mode != "style":
            return rgb
        return self.engine.stylize(
            rgb,
            look.weights,
            model=look.model,
            strength=look.strength,
            preserve_color=look.preserve_color,
            brush=look.brush,
            styles=look.styles,
        )

    def motion(self, rgb: np.ndarray, look: Look) -> Motion | None:
        """What stabilizing this frame needs from the frames before it (None: not stabilizing). Call it in
        order, after the previous frame's ``finish``, while this frame may still be stylizing elsewhere."""
        self._follow(look, rgb.shape[:2])
        return self._stabilizer.motion(rgb) if self._stabilizer is not None else None

    def finish(self, rgb: np.ndarray, stylized: np.ndarray, look: Look, motion: Motion | None = None) -> np.ndarray:
        """Dream (in dream mode, fed back frame to frame) and stabilize (when the look asks); in frame order."""
        self._follow(look, rgb.shape[:2])
        self.frames += 1
        if look.mode == "dream":
            if self.dreamer is None:
                raise RuntimeError("a dream look needs a Dreamer")
            stylized = self.dreamer.dream(rgb, self._dreamed, look.dream, seed=self.frames - 1)
            self._dreamed = stylized
            return stylized
        if self._stabilizer is None:
            return stylized
        return self._stabilizer.blend(motion or self._stabilizer.motion(rgb), stylized)

    def paint(self, rgb: np.ndarray, look: Look, side: int | None = None, pool: Executor | None = None) -> np.ndarray:
        """The live sequence for one frame: at most ``side`` px on the longer side (then scaled back, the
        stream keeps its size), style or dream, stabilize with the motion found in ``pool`` meanwhile."""
        if look.mode == "passthrough":
            self._follow(look, rgb.shape[:2])
            return rgb
        small = resize_to_fit(rgb, side) if side else rgb
        self._follow(look, small.shape[:2])
        if self._stabilizer is not None and pool is not None:
            motion = pool.submit(self._stabilizer.motion, small)
            try:
                stylized = self.stylize(small, look)
            finally:
                found = motion.result()  # waited for even when stylizing failed: never two frames in flight
            out = self.finish(small, stylized, look, found)
        else:
            out = self.finish(small, self.stylize(small, look), look)
        if out.shape[:2] != rgb.shape[:2]:
            out = cv2.resize(out, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
        return out

    def follow(self, look: Look) -> None:
        """Note a frame painted by nobody (passthrough): the next painted frame starts afresh."""
        self._follow(look, ())

    def _follow(self, look: Look, size: tuple[int, ...]) -> None:
        """Start the memory afresh when the look or the frame size changes (adaptive resolution)."""
        key = (*look.key(with_weights=self.weights_reset), size)
        if key == self._key:
            return
        self._key = key
        self._stabilizer = None
        if look.stabilize is not None and look.mode == "style":
            calibration = self.engine.model(look.model).entry.moving_blend
            self._stabilizer = Stabilizer(look.stabilize.calibrated(calibration))
        if look.mode != "dream":
            self._dreamed = None
