"""Tiny contract-conforming ONNX models built with onnx.helper, a manifest for them, and a live server.

Each style of the tiny model is a fixed colour transform (inversion, channel permutation, ...), so
the output is a known function of the weights: out = clip(sum_s w_s (M_s x + b_s)). The "quality"
model computes the same thing behind a chain of large identity convolutions, to be slow.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
import uvicorn
from chromium import CHROMIUM, CHROMIUM_FLAGS, write_y4m
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from service import contract
from service.contract import ModelEntry
from service.http.app import create_app
from service.settings import Settings, StyleSettings

STYLES = ("starry_night", "the_scream", "dream_relu3_3")  # the fast model marks the third as a dream style
DREAMS = {"dream_relu3_3": {"layer": "relu3_3", "gain": 2.5}}
FAST, SLOW = "tiny_realtime", "tiny_quality"
SLOW_KERNEL, SLOW_REPEATS = 15, 2

# per style: 3x3 colour matrix and bias (row = output channel)
_TRANSFORMS = (
    (-np.eye(3), np.ones(3)),  # negative
    (np.eye(3)[[2, 0, 1]], np.zeros(3)),  # channel rotation
    (np.full((3, 3), 1 / 3), np.zeros(3)),  # grey
)


def style_transforms(num_styles: int) -> tuple[np.ndarray, np.ndarray]:
    mats = np.stack([_TRANSFORMS[i % 3][0] for i in range(num_styles)]).astype(np.float32)
    biases = np.stack([_TRANSFORMS[i % 3][1] for i in range(num_styles)]).astype(np.float32)
    return mats, biases


def reference_output(rgb: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """What the tiny model returns for HxWx3 uint8 ``rgb`` and normalized weights [1, S]."""
    mats, biases = style_transforms(weights.shape[1])
    mat = np.tensordot(weights[0], mats, axes=1)
    bias = weights[0] @ biases
    x = rgb.astype(np.float32) / 255.0
    return np.clip((x @ mat.T + bias) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def build_model(path: Path, num_styles: int, slow_kernel: int = 0, slow_repeats: int = 0) -> None:
    mats, biases = style_transforms(num_styles)
    inits = [
        numpy_helper.from_array(mats.reshape(num_styles, 9), "mats"),
        numpy_helper.from_array(biases, "biases"),
        numpy_helper.from_array(np.array([3, 3, 1, 1], dtype=np.int64), "w_shape"),
        numpy_helper.from_array(np.array([3], dtype=np.int64), "b_shape"),
    ]
    nodes = [
        helper.make_node("MatMul", ["style_weights", "mats"], ["w_flat"]),
        helper.make_node("Reshape", ["w_flat", "w_shape"], ["w"]),
        helper.make_node("MatMul", ["style_weights", "biases"], ["b_flat"]),
        helper.make_node("Reshape", ["b_flat", "b_shape"], ["b"]),
        helper.make_node("Conv", ["frame", "w", "b"], ["y0"]),
    ]
    if slow_repeats:
        delta = np.zeros((3, 3, slow_kernel, slow_kernel), dtype=np.float32)
        for c in range(3):
            delta[c, c, slow_kernel // 2, slow_kernel // 2] = 1.0
        inits.append(numpy_helper.from_array(delta, "delta"))
        pad = slow_kernel // 2
        for r in range(slow_repeats):
            nodes.append(helper.make_node("Conv", [f"y{r}", "delta"], [f"y{r + 1}"], pads=[pad] * 4))
    nodes.append(helper.make_node("Clip", [f"y{slow_repeats}", "lo", "hi"], [contract.OUTPUT_STYLIZED]))
    inits += [numpy_helper.from_array(np.array(v, dtype=np.float32), n) for n, v in (("lo", 0.0), ("hi", 1.0))]
    graph = helper.make_graph(
        nodes,
        "tiny_style",
        [
            helper.make_tensor_value_info(contract.INPUT_FRAME, TensorProto.FLOAT, [1, 3, "H", "W"]),
            helper.make_tensor_value_info(contract.INPUT_WEIGHTS, TensorProto.FLOAT, [1, num_styles]),
        ],
        [helper.make_tensor_value_info(contract.OUTPUT_STYLIZED, TensorProto.FLOAT, [1, 3, "H", "W"])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", contract.OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def write_models(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    build_model(folder / f"{FAST}.onnx", len(STYLES))
    build_model(folder / f"{SLOW}.onnx", len(STYLES), SLOW_KERNEL, SLOW_REPEATS)
    entries = [
        ModelEntry(
            FAST,
            f"{FAST}.onnx",
            contract.sha256_file(folder / f"{FAST}.onnx"),
            "realtime",
            STYLES,
            4,
            dreams=DREAMS,
        ),
        ModelEntry(SLOW, f"{SLOW}.onnx", contract.sha256_file(folder / f"{SLOW}.onnx"), "quality", STYLES, 8),
    ]
    contract.write_manifest(folder / contract.MANIFEST_NAME, entries)
    return folder


@pytest.fixture(autouse=True, scope="session")
def _jobs_outside_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Apps built without job settings keep their jobs under $XDG_DATA_HOME: a temporary one, not the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data-home")))
        yield


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def settings(models_dir: Path) -> Settings:
    return Settings(models_dir=models_dir, max_upload_bytes=200_000, ease_frames=3, ice_loopback=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def picture(seed: int, side: int = 160) -> np.ndarray:
    """A photo-like test picture: gradients at seed-dependent frequencies, with noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side]
    base = np.stack([(x * (2 + seed)) % 256, (y * 3 + 20 * seed) % 256, ((x + y) * 2) % 256], axis=-1)
    return (base + rng.integers(0, 30, base.shape)).clip(0, 255).astype(np.uint8)


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def learnable_models(root: Path) -> tuple[Path, Path]:
    """(models folder, photos folder): a tiny real style network exported with its checkpoint and thumbnails,
    as the bundled models ship, so a server can learn styles on it; needs torch (imported here only)."""
    import torch

    from training.checkpoint import save_checkpoint
    from training.export import export_checkpoint
    from training.networks import NetConfig, StyleNet
    from training.train import TrainConfig

    photos = root / "photos"
    photos.mkdir()
    for i in range(9):
        Image.fromarray(picture(i)).save(photos / (f"bsds_val_{i}.jpg" if i < 2 else f"photo_{i}.jpg"))
    styles = []
    for name, seed in (("stripes", 11), ("checks", 12)):
        styles.append(root / f"{name}.png")
        Image.fromarray(picture(seed, 96)).save(styles[-1])
    torch.manual_seed(0)
    net = StyleNet(NetConfig(num_styles=2, widths=(4, 8), res_blocks=1, in_kernel=3, out_kernel=3))
    with torch.no_grad():
        for norm in net.norms():
            norm.gamma.copy_(1 + 0.5 * torch.randn(norm.gamma.shape))
            norm.beta.copy_(0.5 * torch.randn(norm.beta.shape))
    cfg = TrainConfig(content_dir=photos, style_images=tuple(styles), out_dir=root, tier="realtime")
    save_checkpoint(root / "ck.pt", net.eval(), ["stripes", "checks"], 10, cfg, None, {})
    export_checkpoint(root / "ck.pt", root / "models")
    return root / "models", photos


class LiveServer:
    """uvicorn serving ``create_app(settings)`` on 127.0.0.1 in a background thread."""

    def __init__(self, settings: Settings, style_settings: StyleSettings | None = None) -> None:
        self.settings = settings.model_copy(update={"port": free_port()})
        self.app = create_app(self.settings, style_settings=style_settings)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.settings.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(settings) as server:
        yield server


@pytest.fixture
def camera(tmp_path: Path) -> Path:
    """A .y4m clip for Chromium's fake camera."""
    return write_y4m(tmp_path / "camera.y4m")


@pytest.fixture
def browser(camera: Path) -> Iterator[object]:
    """Headless Chromium whose fake camera plays ``camera``."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-video-capture={camera}"]
        )
        try:
            yield launched
        finally:
            launched.close()
