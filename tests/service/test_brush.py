"""Brush size: strokes scale with the brush, the picture stays as sharp, every vocabulary checks the value."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import FAST, reference_output
from fastapi.testclient import TestClient
from PIL import Image

from service import contract
from service.brush import BRUSH_MAX, BRUSH_MIN, brush_size, check_brush, guided_upsample, shrink
from service.engine import Engine, RuntimeOptions
from service.errors import BadRequest
from service.http.app import create_app
from service.live.controls import Controls, apply_control
from service.look import Look, LookUpdate
from service.settings import Settings
from service.video.pipeline import VideoOptions


def sharp_scene(height: int = 120, width: int = 160) -> np.ndarray:
    """Hard-edged blocks and a thin line: float32 [H,W,3] in [0,1]."""
    rng = np.random.default_rng(0)
    img = np.full((height, width, 3), 0.5, np.float32)
    for _ in range(12):
        y, x = rng.integers(0, height - 20), rng.integers(0, width - 20)
        img[y : y + rng.integers(8, 30), x : x + rng.integers(8, 30)] = rng.random(3)
    img[:, width // 3] = 1.0
    return img


def test_check_brush_accepts_the_range_and_names_it() -> None:
    assert check_brush(2) == 2.0 and check_brush(BRUSH_MIN) == BRUSH_MIN and check_brush(BRUSH_MAX) == BRUSH_MAX
    for bad in (0.1, 10, float("nan"), float("inf"), 1e400, True, "2", None, [2]):
        with pytest.raises(BadRequest, match="brush"):
            check_brush(bad)


def test_brush_size_divides_the_frame() -> None:
    assert brush_size(480, 640, 2.0) == (240, 320)
    assert brush_size(480, 640, 0.5) == (960, 1280)
    assert brush_size(10, 10, 4.0) == (8, 8)  # never below a usable size


def test_guided_upsample_restores_the_frames_edges() -> None:
    """Upsampling a half- or third-size copy of a photo itself: the guided result is far closer to the photo
    than bilinear upsampling (the edges come back), and a flat stylized copy stays flat."""
    data = pytest.importorskip("skimage.data")
    frame = np.asarray(Image.fromarray(data.coffee()).resize((320, 240), Image.Resampling.LANCZOS))
    frame = frame.astype(np.float32) / 255
    for brush in (2, 3):
        small = shrink(frame, *brush_size(240, 320, brush))
        guided = guided_upsample(frame, small, small)
        plain = cv2.resize(small, (320, 240), interpolation=cv2.INTER_LINEAR)
        assert np.abs(guided - frame).mean() < 0.6 * np.abs(plain - frame).mean()
    flat = np.full_like(small, 0.3)
    np.testing.assert_allclose(guided_upsample(frame, small, flat), 0.3, atol=1e-4)


def test_guided_upsample_keeps_the_stylized_colours() -> None:
    frame = sharp_scene()
    small = shrink(frame, 60, 80)
    styled = small[..., [2, 0, 1]]  # a 'style' that rotates the channels
    out = guided_upsample(frame, small, styled)
    assert out.shape == frame.shape
    assert np.abs(out.mean((0, 1)) - styled.mean((0, 1))).max() < 0.02


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def engine(models_dir: Path) -> Engine:
    return Engine.load(models_dir, RuntimeOptions())


def test_engine_brush_one_is_the_plain_network(engine: Engine) -> None:
    rgb = (sharp_scene() * 255).astype(np.uint8)
    w = contract.one_hot(1, 3)
    np.testing.assert_array_equal(engine.stylize(rgb, w, model=FAST, brush=1.0), engine.stylize(rgb, w, model=FAST))


@pytest.mark.parametrize("brush", [0.5, 2.0, 3.0])
def test_engine_brush_keeps_the_size_and_the_look(engine: Engine, brush: float) -> None:
    """The tiny model is a per-pixel colour transform, so any brush should give (nearly) the same picture:
    what changes is only the size it was computed at."""
    rgb = (sharp_scene() * 255).astype(np.uint8)
    w = contract.one_hot(1, 3)
    out = engine.stylize(rgb, w, model=FAST, brush=brush)
    assert out.shape == rgb.shape
    expected = reference_output(rgb, w).astype(np.float32)
    assert np.abs(out.astype(np.float32) - expected).mean() < 6  # guided: edges from the frame, not blurred


def test_brush_on_the_data_channel_is_checked_and_applied() -> None:
    class FakeEngine:
        def model(self, name: str | None) -> object:
            class Loaded:
                class entry:  # noqa: N801 - mimics LoadedModel.entry
                    name = "fast"

                styles = ("a", "b")

            return Loaded()

    state = Controls.starting(Look(model="fast", styles=("a", "b"), weights=np.array([[1.0, 0.0]], np.float32)), 0)
    assert apply_control(FakeEngine(), state, {"brush": 2.5}) == {"ok": True}  # type: ignore[arg-type]
    assert state.look.brush == 2.5
    for bad in ({"brush": 9}, {"brush": "big"}, '{"brush": 1e400}', {"brush": 2, "strength": 7}):
        reply = apply_control(FakeEngine(), state, bad)  # type: ignore[arg-type]
        assert "error" in reply, bad
    assert state.look.brush == 2.5  # nothing of a bad message applied


def test_brush_in_video_options_and_rest(client: TestClient) -> None:
    with pytest.raises(BadRequest, match="brush"):
        VideoOptions(look=LookUpdate.parse({"brush": 0}))
    assert VideoOptions(look=LookUpdate.parse({"brush": 2})).look.brush == 2
    buf = io.BytesIO()
    Image.fromarray((sharp_scene() * 255).astype(np.uint8)).save(buf, format="PNG")
    ok = client.post("/api/stylize", files={"image": ("a.png", buf.getvalue(), "image/png")}, data={"brush": "2"})
    assert ok.status_code == 200
    assert np.asarray(Image.open(io.BytesIO(ok.content))).shape == (120, 160, 3)
    bad = client.post("/api/stylize", files={"image": ("a.png", buf.getvalue(), "image/png")}, data={"brush": "9"})
    assert bad.status_code == 400 and "brush" in bad.json()["detail"]
