"""The engine against the contract: known answers on the tiny nets, padding round trip, refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import FAST, SLOW, STYLES, reference_output

from service import contract
from service.engine import Engine, RuntimeOptions, choose_providers
from service.errors import BadRequest, ModelLoadError


@pytest.fixture(scope="module")
def engine(models_dir: Path) -> Engine:
    return Engine.load(models_dir, RuntimeOptions())


def test_contract_round_trip_is_exact() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    frame = contract.pad_frame(contract.image_to_frame(rgb), 8)
    assert frame.shape[2] % 8 == 0 and frame.shape[3] % 8 == 0 and frame.shape[2:] >= (7, 9)
    np.testing.assert_array_equal(contract.frame_to_image(contract.crop_frame(frame, 7, 9)), rgb)


@pytest.mark.parametrize("model", [FAST, SLOW])
def test_odd_sized_frames_come_back_same_size_with_known_answer(engine: Engine, model: str) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (37, 51, 3), dtype=np.uint8)
    weights = contract.normalize_weights([1, 2, 1], len(STYLES))
    out = engine.stylize(rgb, weights, model=model)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - reference_output(rgb, weights)).max() <= 1


def test_strength_zero_returns_the_original(engine: Engine) -> None:
    rgb = np.random.default_rng(2).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    out = engine.stylize(rgb, contract.one_hot(0, 3), strength=0.0)
    np.testing.assert_array_equal(out, rgb)


def test_default_model_is_the_realtime_one(engine: Engine) -> None:
    assert engine.default_model == FAST
    with pytest.raises(BadRequest, match="unknown model 'nope'"):
        engine.model("nope")


def test_a_tampered_file_is_refused_naming_it(models_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "models"
    shutil.copytree(models_dir, copy)
    with (copy / f"{FAST}.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelLoadError, match=rf"{FAST}\.onnx: sha256"):
        Engine.load(copy, RuntimeOptions())


def test_a_graph_that_breaks_the_contract_is_refused(models_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "models"
    shutil.copytree(models_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["models"][0]["styles"] = ["only_one"]  # graph expects 3 style weights
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="dreams .'dream_relu3_3'. are not among its styles"):
        Engine.load(copy, RuntimeOptions())  # the manifest is checked first
    manifest["models"][0]["dreams"] = {}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match=rf"{FAST}\.onnx: input 'style_weights'"):
        Engine.load(copy, RuntimeOptions())


def test_missing_manifest_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="manifest.json: manifest not found"):
        Engine.load(tmp_path, RuntimeOptions())


def test_providers_are_chosen_from_what_is_available() -> None:
    available = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(None, available) == available
    assert choose_providers(["CPUExecutionProvider"], available) == ["CPUExecutionProvider"]
    with pytest.raises(ModelLoadError, match="TensorrtExecutionProvider"):
        choose_providers(["TensorrtExecutionProvider"], available)


BUNDLED = Path(__file__).resolve().parents[2] / "models"


def resident_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(
    not (BUNDLED / "quality.onnx").is_file() or not Path("/proc/self/statm").exists(),
    reason="needs the bundled models and /proc",
)
def test_memory_returns_after_an_oversized_image() -> None:
    engine = Engine.load(BUNDLED, RuntimeOptions(intra_op_threads=1))
    styles = engine.model("realtime").styles
    weights = contract.one_hot(0, len(styles))
    live = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    for _ in range(3):
        engine.stylize(live, weights, model="realtime")
    baseline = resident_mb()
    big = np.random.default_rng(1).integers(0, 255, (1280, 1704, 3), dtype=np.uint8)
    engine.stylize(big, weights, model="realtime")
    photo = big[:960, :1280]
    engine.stylize(photo, contract.one_hot(0, len(engine.model("quality").styles)), model="quality")
    engine.stylize(live, weights, model="realtime")
    kept = resident_mb() - baseline  # without shrinking the arena: 1416 MB; with it, 71 MB (this machine)
    assert kept < 300, f"{kept:.0f} MB kept after two oversized images"


def test_a_brush_half_live_frame_keeps_the_realtime_arena_but_not_the_quality_one() -> None:
    from service.engine import shrinks_arena

    live, half_brush, photo = 640 * 480, 1280 * 960, 1280 * 1704
    assert not shrinks_arena("realtime", live) and not shrinks_arena("quality", live)
    assert not shrinks_arena("realtime", half_brush, enlarged=True)  # the live brush 0.5: no reallocation every frame
    assert shrinks_arena("quality", half_brush, enlarged=True)  # would hold 1.3 GB
    assert shrinks_arena("realtime", half_brush)  # a 1280x960 photo at brush 1: memory back to its baseline
    assert shrinks_arena("realtime", photo) and shrinks_arena("realtime", photo, enlarged=True)
