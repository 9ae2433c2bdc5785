"""Loads the manifest's ONNX models, checks them against the contract, and stylizes frames."""

from __future__ import annotations

import contextlib
import ctypes
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from service import contract
from service.blend import remap_weights
from service.brush import brush_size, guided_upsample, shrink
from service.contract import ContractError, ModelEntry
from service.errors import BadRequest, ModelLoadError

log = logging.getLogger(__name__)

PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


@dataclass(frozen=True)
class RuntimeOptions:
    """How ONNX Runtime runs: providers (None = best available), threads and spinning."""

    providers: tuple[str, ...] | None = None
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    spinning: bool = False


def choose_providers(requested: Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """The requested providers (each must be available) or the preferred ones that are."""
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise ModelLoadError(f"providers {missing} are not available; this onnxruntime has {list(available)}")
        return list(requested)
    return [p for p in PREFERRED_PROVIDERS if p in available] or list(available)


# Passes over this many pixels (past 1.5x a 640x480 frame: REST images, big video jobs) shrink ONNX Runtime's
# arena when they end, so memory returns to the live streams' level; live-size frames keep the arena's speed.
SHRINK_ABOVE_PIXELS = int(1.5 * 640 * 480)
SHRINK_ARENA = ort.RunOptions()
SHRINK_ARENA.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
# The realtime tier keeps its arena for a copy enlarged by a brush below 1 up to a brush-0.5 live frame (1280x960
# stylized for a 640x480 one): that holds about 150 MB more (the quality tier's would hold 1.3 GB), and giving it
# back after every frame made that brush 1.5x slower on one thread. A big image stylized as it is (brush 1: REST
# images, video jobs) still gives it back, so memory returns to its baseline after one.
REALTIME_KEEP_PIXELS = 4 * 640 * 480


def shrinks_arena(tier: str, pixels: int, enlarged: bool = False) -> bool:
    """Whether a pass of ``pixels`` through a model of ``tier`` gives ONNX Runtime's arena back when it ends;
    ``enlarged``: the pass is a copy enlarged for a brush below 1 (a live stream's every frame)."""
    return pixels > (REALTIME_KEEP_PIXELS if tier == "realtime" and enlarged else SHRINK_ABOVE_PIXELS)


def trim_heap() -> None:
    """Hand freed heap pages back to the system (glibc keeps them otherwise); nothing elsewhere."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def session_options(options: RuntimeOptions) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = options.intra_op_threads
    so.inter_op_num_threads = options.inter_op_threads
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    spin = "1" if options.spinning else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", spin)
    so.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return so


def resize_to_fit(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale an HxWx3 image so its longer side is at most ``max_side`` (never upscales)."""
    height, width = rgb.shape[:2]
    new_h, new_w = contract.fit_within(height, width, max_side)
    if (new_h, new_w) == (height, width):
        return rgb
    return cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class LoadedModel:
    entry: ModelEntry
    session: ort.InferenceSession
    path: Path  # the verified file (its sha256 is the entry's): what a browser painting here downloads

    @property
    def styles(self) -> tuple[str, ...]:
        return self.entry.styles


def load_model(path: Path, entry: ModelEntry, options: RuntimeOptions, providers: list[str]) -> LoadedModel:
    """Verify the file's sha256 and I/O against the contract; raise ModelLoadError naming the file."""
    if not path.is_file():
        raise ModelLoadError(f"{path}: model file of {entry.name!r} not found")
    digest = contract.sha256_file(path)
    if digest != entry.sha256:
        raise ModelLoadError(f"{path}: sha256 {digest} does not match the manifest's {entry.sha256}")
    try:
        session = ort.InferenceSession(str(path), sess_options=session_options(options), providers=providers)
    except Exception as exc:  # onnxruntime raises several unrelated types for a bad graph
        raise ModelLoadError(f"{path}: onnxruntime cannot load it ({exc})") from exc
    inputs = {i.name: tuple(i.shape) for i in session.get_inputs()}
    outputs = {o.name: tuple(o.shape) for o in session.get_outputs()}
    try:
        contract.check_io(inputs, outputs, len(entry.styles))
    except ContractError as exc:
        raise ModelLoadError(f"{path}: {exc}") from exc
    return LoadedModel(entry=entry, session=session, path=path)


class Engine:
    """All models of one manifest. ``stylize`` is thread-safe (ORT sessions allow concurrent run)."""

    def __init__(self, models: dict[str, LoadedModel], default_model: str, providers: list[str]) -> None:
        assert default_model in models
        self.models = models
        self.default_model = default_model
        self.providers = providers

    @classmethod
    def load(cls, models_dir: Path, options: RuntimeOptions, default_model: str | None = None) -> Engine:
        manifest = models_dir / contract.MANIFEST_NAME
        try:
            entries = contract.read_manifest(manifest)
        except ContractError as exc:
            raise ModelLoadError(str(exc)) from exc
        if not entries:
            raise ModelLoadError(f"{manifest}: lists no models")
        providers = choose_providers(options.providers, ort.get_available_providers())
        models = {e.name: load_model(models_dir / e.file, e, options, providers) for e in entries}
        if default_model is None:
            realtime = [e.name for e in entries if e.tier == "realtime"]
            default_model = (realtime or [entries[0].name])[0]
        elif default_model not in models:
            raise ModelLoadError(f"{manifest}: default model {default_model!r} not in {sorted(models)}")
        log.info("loaded models %s on %s (default %s)", sorted(models), providers, default_model)
        return cls(models, default_model, providers)

    def swap(self, loaded: LoadedModel) -> LoadedModel | None:
        """Serve ``loaded`` under its name from the next frame on (a style was added or removed); a frame
        already running finishes on the session it started with. Returns the model it replaced."""
        previous = self.models.get(loaded.entry.name)
        self.models[loaded.entry.name] = loaded  # one dict store: every reader sees the old or the new
        log.info(
            "model %s now serves %d styles (sha256 %s)", loaded.entry.name, len(loaded.styles), loaded.entry.sha256[:12]
        )
        return previous

    def model(self, name: str | None) -> LoadedModel:
        """The named model (None = default); BadRequest lists the known names."""
        key = self.default_model if name is None else name
        if key not in self.models:
            raise BadRequest(f"unknown model {key!r}; available: {sorted(self.models)}")
        return self.models[key]

    def stylize(
        self,
        rgb: np.ndarray,
        weights: np.ndarray,
        *,
        model: str | None = None,
        strength: float = 1.0,
        preserve_color: bool = False,
        brush: float = 1.0,
        styles: tuple[str, ...] | None = None,
    ) -> np.ndarray:
        """HxWx3 uint8 RGB -> stylized HxWx3 uint8 RGB; ``weights`` is a normalized float32 [1, S].

        ``styles``: the names ``weights`` was made for; when the model's have changed since (a style added
        or removed between the choice and this frame), the blend follows the names.

        ``brush`` scales the strokes (service/brush.py): above 1 a smaller copy is stylized and upsampled
        guided by the frame, below 1 a larger one is stylized and shrunk.
        """
        loaded = self.model(model)
        if styles is not None and styles != loaded.styles:
            weights = remap_weights(weights, styles, loaded.styles)
        frame = contract.image_to_frame(rgb)
        if brush == 1.0:
            out = self._run(loaded, frame, weights)
        else:
            height, width = frame.shape[2:]
            full = frame[0].transpose(1, 2, 0)
            small = shrink(full, *brush_size(height, width, brush))
            pass_out = self._run(loaded, contract.image_to_frame(small), weights, enlarged=brush < 1)
            styled = pass_out[0].transpose(1, 2, 0)
            big = guided_upsample(full, small, styled) if brush > 1 else shrink(styled, height, width)
            out = contract.image_to_frame(big)
        if preserve_color:
            out = contract.preserve_color(frame, out)
        return contract.frame_to_image(contract.mix_strength(frame, out, strength))

    @staticmethod
    def _run(loaded: LoadedModel, frame: np.ndarray, weights: np.ndarray, enlarged: bool = False) -> np.ndarray:
        """One network pass: [1,3,H,W] -> [1,3,H,W], padded to the model's size multiple and cropped back.
        A pass larger than a live frame gives its arena memory back when it ends: ONNX Runtime's arena keeps
        what its largest pass needed, so one big image would hold that much for good (see shrinks_arena)."""
        height, width = frame.shape[2:]
        padded = contract.pad_frame(frame, loaded.entry.size_multiple)
        oversized = shrinks_arena(loaded.entry.tier, height * width, enlarged)
        (out,) = loaded.session.run(
            [contract.OUTPUT_STYLIZED],
            {contract.INPUT_FRAME: padded, contract.INPUT_WEIGHTS: weights},
            SHRINK_ARENA if oversized else None,
        )
        result = contract.crop_frame(out, height, width)
        if oversized:
            del out, padded
            trim_heap()
        return result
