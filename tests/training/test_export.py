"""ONNX export: contract names and dynamic sizes, parity with PyTorch, refusal of a wrong graph."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from service import contract
from training.checkpoint import save_checkpoint
from training.export import (
    PARITY_TOLERANCE,
    ExportError,
    check_graph,
    check_parity,
    export_checkpoint,
    export_network,
)
from training.networks import StyleNet
from training.train import TrainConfig

from .conftest import TINY, perturbed


def test_parity_within_tolerance(tiny_onnx: tuple[Path, float]) -> None:
    _, parity = tiny_onnx
    assert parity <= PARITY_TOLERANCE


def test_graph_follows_the_contract(tiny_onnx: tuple[Path, float], tiny_net: StyleNet) -> None:
    path, _ = tiny_onnx
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [contract.INPUT_FRAME, contract.INPUT_WEIGHTS]
    assert [o.name for o in session.get_outputs()] == [contract.OUTPUT_STYLIZED]
    for h, w in ((16, 24), (40, 72)):  # two sizes, one graph
        frame = np.random.default_rng(1).random((1, 3, h, w), dtype=np.float32)
        (out,) = session.run(None, {"frame": frame, "style_weights": contract.one_hot(0, 3)})
        with torch.no_grad():
            ref = tiny_net(torch.from_numpy(frame), torch.tensor([[1.0, 0, 0]])).numpy()
        np.testing.assert_allclose(out, ref, atol=1e-4)


def test_each_conditional_norm_is_one_instance_normalization(tiny_onnx: tuple[Path, float], tiny_net: StyleNet) -> None:
    """The style's scale and shift are the node's own inputs: no full-size multiply and add after it (ONNX Runtime
    spent about 15% of a realtime frame on those; a residual Add may still follow)."""
    graph = onnx.load(str(tiny_onnx[0])).graph
    norms = [n for n in graph.node if n.op_type == "InstanceNormalization"]
    assert len(norms) == len(tiny_net.norms())
    normed = {n.output[0] for n in norms}
    initializers = {t.name for t in graph.initializer}
    assert not [n for n in graph.node if n.op_type == "Mul" and normed & set(n.input)]
    assert all(n.input[1] not in initializers and n.input[2] not in initializers for n in norms)


def test_a_graph_with_wrong_names_is_refused(tmp_path: Path) -> None:
    frame = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "h", "w"])
    weights = helper.make_tensor_value_info("style_weights", TensorProto.FLOAT, [1, 3])
    out = helper.make_tensor_value_info("stylized", TensorProto.FLOAT, [1, 3, "h", "w"])
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["stylized"])], "g", [frame, weights], [out])
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph), path)
    with pytest.raises(ExportError, match="graph inputs"):
        check_graph(path, 3)


def test_parity_check_catches_a_different_network(tiny_onnx: tuple[Path, float], tiny_net: StyleNet) -> None:
    path, _ = tiny_onnx
    other = StyleNet(tiny_net.config).eval()
    with pytest.raises(ExportError, match="differs from PyTorch"):
        check_parity(other, path)


def test_export_checkpoint_writes_model_and_manifest(tiny_net: StyleNet, tmp_path: Path) -> None:
    cfg = TrainConfig(content_dir=tmp_path, style_images=(tmp_path / "a.jpg",), out_dir=tmp_path)
    save_checkpoint(tmp_path / "ck.pt", tiny_net, ["a", "b", "starry_night"], 7, cfg, None, {"style": 1.0})
    entry = export_checkpoint(tmp_path / "ck.pt", tmp_path / "models", tier="realtime")
    manifest = contract.read_manifest(tmp_path / "models" / "manifest.json")
    assert manifest == [entry]
    assert entry.styles == ("a", "b", "starry_night") and entry.size_multiple == 4
    assert entry.sha256 == contract.sha256_file(tmp_path / "models" / "realtime.onnx")
    assert any("Vincent van Gogh" in c for c in entry.credits) and any("Simonyan" in c for c in entry.credits)
    assert not list((tmp_path / "models").glob("*.tmp*"))


def test_a_dream_style_is_not_shipped_unmeasured(tiny_net: StyleNet, tmp_path: Path) -> None:
    """Without held-out photos the gain the service shows cannot be measured: refuse before writing anything."""
    from PIL import Image

    cfg = TrainConfig(content_dir=tmp_path, style_images=(tmp_path / "a.jpg",), out_dir=tmp_path)
    styles = ["a", "b", contract.DREAM_PREFIX + "relu3_3"]
    save_checkpoint(tmp_path / "ck.pt", tiny_net, styles, 7, cfg, None, {"style": 1.0})
    with pytest.raises(ValueError, match="--measure-on"):
        export_checkpoint(tmp_path / "ck.pt", tmp_path / "models", tier="realtime")
    assert not (tmp_path / "models").exists()
    y, x = np.mgrid[0:64, 0:80]
    photo = tmp_path / "held_out.png"
    Image.fromarray(np.stack([x * 3, y * 3, (x * y) % 256], -1).astype(np.uint8)).save(photo)
    entry = export_checkpoint(tmp_path / "ck.pt", tmp_path / "models", tier="realtime", measure_on=(photo,))
    info = entry.dreams[contract.DREAM_PREFIX + "relu3_3"]
    assert info["layer"] == "relu3_3" and info["measured_on"] == ["held_out.png"] and float(info["gain"]) > 0


def test_a_memory_network_exports_with_its_memory_input_which_the_service_refuses(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = perturbed(StyleNet(dataclasses.replace(TINY, memory=True, memory_gate=True)))
    with torch.no_grad():  # the memory's projections and the gate start at zero: give them a say
        for part in (net.remember, net.gate):
            for p in part.parameters():
                p.copy_(0.3 * torch.randn(p.shape))
    path = tmp_path / "memory.onnx"
    assert export_network(net, path, memory=True) <= PARITY_TOLERANCE
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names == [contract.INPUT_FRAME, contract.INPUT_WEIGHTS, contract.INPUT_MEMORY]
    rng = np.random.default_rng(2)
    frame = rng.random((1, 3, 24, 40), dtype=np.float32)
    feeds = {contract.INPUT_FRAME: frame, contract.INPUT_WEIGHTS: contract.one_hot(1, 3)}
    told = [
        session.run(None, feeds | {contract.INPUT_MEMORY: m})[0]
        for m in (
            np.zeros((1, contract.MEMORY_CHANNELS, 24, 40), np.float32),
            rng.random((1, contract.MEMORY_CHANNELS, 24, 40), dtype=np.float32),
        )
    ]
    assert np.abs(told[0] - told[1]).max() > 1e-2  # the memory reaches the painting through the graph
    check_graph(path, 3, memory=True)
    with pytest.raises(ExportError, match="a memory network's, and no memory is fed"):  # the service's check
        check_graph(path, 3)
    with pytest.raises(ExportError, match="needs a network with a memory"):
        export_network(perturbed(StyleNet(TINY)), tmp_path / "plain.onnx", memory=True)


def test_a_memory_input_of_the_wrong_layout_is_refused() -> None:
    frame, out = (1, 3, "h", "w"), (1, 3, "h", "w")
    inputs = {contract.INPUT_FRAME: frame, contract.INPUT_WEIGHTS: (1, 3), contract.INPUT_MEMORY: (1, 3, "h", "w")}
    with pytest.raises(contract.ContractError, match="'memory' must be"):
        contract.check_io(inputs, {contract.OUTPUT_STYLIZED: out}, 3, memory=True)
