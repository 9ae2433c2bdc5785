"""Small synthetic video clips for the video tests: an H.264 clip with an AAC tone, its frames, a panning scene."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

FPS, FRAMES, WIDTH, HEIGHT, GOP = 12, 24, 64, 48, 6


SAMPLE_RATE = 16000


def clip_frame(index: int) -> np.ndarray:
    """A smooth gradient drifting right, with a square moving down: real motion for the flow."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    rgb = np.stack([(xs * 4 + index * 3) % 256, ys * 5, np.full_like(xs, 128)], axis=2).astype(np.uint8)
    top = 4 + index
    rgb[top : top + 10, 20:30] = (250, 240, 30)
    return rgb


def write_clip(path: Path, frames: int = FRAMES, audio: bool = True) -> Path:
    """H.264 video (a keyframe every GOP frames) plus an AAC tone of the same length."""
    with av.open(str(path), mode="w", options={"movflags": "faststart"}) as out:
        video = out.add_stream("libx264", rate=FPS, options={"g": str(GOP), "keyint_min": str(GOP)})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        sound = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono") if audio else None
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(clip_frame(i), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        if sound is not None:
            seconds = np.arange(int(SAMPLE_RATE * frames / FPS)) / SAMPLE_RATE
            tone = (0.3 * np.sin(2 * np.pi * 440 * seconds)).astype(np.float32)[None]
            for start in range(0, tone.shape[1], 1024):
                samples = tone[:, start : start + 1024]
                chunk = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = SAMPLE_RATE, start
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
        out.mux(video.encode(None))
    return path


def read_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]


def panning(index: int) -> np.ndarray:
    """A textured 96x128 scene, the camera panning 4 px right per frame."""
    rng = np.random.default_rng(0)
    scene = cv2.GaussianBlur(rng.uniform(0, 255, (96, 256, 3)).astype(np.float32), (0, 0), 4.0)
    scene = (scene - scene.mean()) / scene.std() * 50 + 128
    return np.clip(scene[:, 4 * index : 4 * index + 128], 0, 255).astype(np.uint8)
