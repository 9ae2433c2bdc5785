"""The memory bench: the memory is carried by the stabilizer's motion, and only into a network that has one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from service.contract import MEMORY_CHANNELS
from service.stabilize import StabilizeOptions
from training.bench.memory import SCREENED, _image, _tensor, carried, exact, main, painted_by
from training.checkpoint import save_checkpoint
from training.networks import NetConfig, StyleNet

from .conftest import TINY, perturbed


def _moving_frames(count: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    scene = (rng.random((40, 80, 3)) * 255).astype(np.uint8)
    return [np.ascontiguousarray(scene[4:36, 2 * i : 2 * i + 48]) for i in range(count)]  # a 2 px pan a frame


def test_the_first_frame_has_no_memory_and_the_next_carry_the_last_painting() -> None:
    net = perturbed(StyleNet(NetConfig.from_json(TINY.to_json() | {"memory": True}))).eval()
    with torch.no_grad():
        for conv in net.remember:
            conv.weight.normal_(std=1.0)
    frames, weights = _moving_frames(), torch.tensor([[1.0, 0.0, 0.0]])
    outputs = carried(net, frames, weights)
    with torch.no_grad():
        plain = [_image(net(_tensor(f), weights)) for f in frames]
    assert np.array_equal(outputs[0], plain[0])
    assert all(np.abs(o.astype(int) - p.astype(int)).max() > 2 for o, p in zip(outputs[1:], plain[1:], strict=True))


def test_the_screened_rows_are_the_carried_ones_the_bench_paints() -> None:
    net = perturbed(StyleNet(NetConfig.from_json(TINY.to_json() | {"memory": True}))).eval()
    rows = painted_by(net, _moving_frames(2), torch.tensor([[1.0, 0.0, 0.0]]), StabilizeOptions())
    assert set(SCREENED) < set(rows)
    assert all("carried" in name for name in SCREENED)


def test_the_exact_memory_is_the_painting_itself_trusted_everywhere() -> None:
    painting = torch.rand(1, 3, 8, 12)
    memory = exact(painting)
    assert memory.shape == (1, MEMORY_CHANNELS, 8, 12)
    torch.testing.assert_close(memory[:, :3], painting)
    assert (memory[:, 3:] == 1).all()


def test_a_checkpoint_without_a_memory_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plain.pt"
    save_checkpoint(path, StyleNet(TINY), ["a", "b", "c"], 0, NetConfig(num_styles=3), None, {})
    with pytest.raises(SystemExit) as exit_info:
        main([str(path), "--shipped", str(path), "--clips", ""])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().endswith("a network without a memory")


def test_the_sheet_puts_each_row_beside_its_label_and_under_its_column() -> None:
    from PIL import Image

    from training.sheet import LABEL_WIDTH, labelled_grid

    cell = (40, 30)
    rows = [
        (name, [Image.new("RGB", cell, colour) for colour in colours])
        for name, colours in [("frame", ["red", "blue"]), ("carried", ["green", "yellow"])]
    ]
    sheet = labelled_grid(rows, cell, ["carphone / great_wave", "carphone / the_scream"])
    assert sheet.size == (LABEL_WIDTH + 2 * (40 + 4) + 4, 24 + 2 * (30 + 4) + 4)
    pixel = sheet.convert("RGB").getpixel
    assert pixel((LABEL_WIDTH + 4 + 20, 24 + 4 + 15)) == (255, 0, 0)  # first row, first column
    assert pixel((LABEL_WIDTH + 4 + 44 + 20, 24 + 4 + 34 + 15)) == (255, 255, 0)  # second row, second column
    assert pixel((LABEL_WIDTH // 2, 24 + 4 + 15)) != (255, 0, 0)  # the label column is not a tile
