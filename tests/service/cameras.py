"""aiortc cameras for the streaming tests: a still gradient, and how far a received frame is from a picture."""

from __future__ import annotations

import numpy as np
from aiortc import VideoStreamTrack
from av import VideoFrame

# VP8 round trips move colours by tens of levels at worst; the mean over a smooth frame moves little
TOLERANCE = 14.0


def gradient(height: int = 240, width: int = 320) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([x / width, y / height, 0.2 + 0.6 * (x + y) / (width + height)], axis=-1)
    return (rgb * 255).astype(np.uint8)


class StillTrack(VideoStreamTrack):
    """A 30 fps camera that always shows the same picture."""

    def __init__(self, rgb: np.ndarray) -> None:
        super().__init__()
        self.rgb = rgb

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame.from_ndarray(self.rgb, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


def distance(frame: VideoFrame, expected: np.ndarray) -> float:
    got = frame.to_ndarray(format="rgb24").astype(np.float32)
    assert got.shape == expected.shape
    return float(np.abs(got - expected).mean())
