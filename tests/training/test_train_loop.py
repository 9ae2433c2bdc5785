"""Training on tiny pictures: the loss falls, resume continues, add-style leaves the old styles alone."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from training.cli import run
from training.train import TrainConfig, Trainer, load_checkpoint


def config(content: Path, styles: list[Path], out: Path, **kw: object) -> TrainConfig:
    base: dict[str, object] = dict(content_dir=content, style_images=tuple(styles), out_dir=out, steps=20,
                                   batch_size=2, crop_size=32, lr=1e-2, style_weight=1e-5, style_size=64,
                                   checkpoint_every=5, preview_every=1000)
    return TrainConfig(**(base | kw))  # type: ignore[arg-type]


def losses(out: Path) -> list[float]:
    with (out / "log.csv").open() as handle:
        return [float(row["total"]) for row in csv.DictReader(handle)]


def test_twenty_steps_lower_the_loss(picture_dirs: tuple[Path, list[Path]], tmp_path: Path) -> None:
    content, styles = picture_dirs
    Trainer(config(content, styles[:1], tmp_path / "run")).run()
    totals = losses(tmp_path / "run")
    assert len(totals) == 20
    assert sum(totals[-4:]) / 4 < 0.7 * sum(totals[:4]) / 4


def test_resume_continues_from_the_saved_step(picture_dirs: tuple[Path, list[Path]], tmp_path: Path) -> None:
    content, styles = picture_dirs
    out = tmp_path / "run"
    Trainer(config(content, styles, out, steps=5)).run()
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 5
    trainer = Trainer(config(content, styles, out, steps=8, resume=out / "checkpoint.pt"))
    assert trainer.step == 5
    trainer.run()
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["step"] == 8 and ckpt["optimizer"] is not None
    with (out / "log.csv").open() as handle:
        assert [int(r["step"]) for r in csv.DictReader(handle)] == list(range(1, 9))


def test_add_style_trains_only_the_new_rows(picture_dirs: tuple[Path, list[Path]], tmp_path: Path) -> None:
    content, styles = picture_dirs
    base = tmp_path / "base"
    Trainer(config(content, styles[:1], base, steps=3)).run()
    before = load_checkpoint(base / "checkpoint.pt")["state_dict"]
    added = tmp_path / "added"
    trainer = Trainer(config(content, styles[1:], added, steps=6, resume=base / "checkpoint.pt",
                             new_styles_only=True))
    trainer.run()
    ckpt = load_checkpoint(added / "checkpoint.pt")
    assert ckpt["styles"] == ["stripes", "checks"]
    after = ckpt["state_dict"]
    changed_new_rows = 0
    for name, old in before.items():
        if name.endswith((".gamma", ".beta")):
            torch.testing.assert_close(after[name][:1], old, rtol=0, atol=0)
            changed_new_rows += int(not torch.equal(after[name][1:], old.mean(0, keepdim=True)))
        else:
            torch.testing.assert_close(after[name], old, rtol=0, atol=0)
    assert changed_new_rows > 0


def test_cli_bad_input_is_one_line_and_exit_2(picture_dirs: tuple[Path, list[Path]], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    content, styles = picture_dirs
    empty = tmp_path / "empty"
    empty.mkdir()
    not_image = tmp_path / "style.jpg"
    not_image.write_text("hello")
    cases = [
        ["train", "--content", str(content), "--styles", str(tmp_path / "missing.jpg"), "--out", str(tmp_path / "o")],
        ["train", "--content", str(empty), "--styles", str(styles[0]), "--out", str(tmp_path / "o")],
        ["train", "--content", str(content), "--styles", str(not_image), "--out", str(tmp_path / "o"), "--steps", "1"],
        ["export", str(not_image)],
    ]
    for argv in cases:
        assert run(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("livestyle-train: error:"), err


def test_checkpoint_from_another_architecture_is_refused(picture_dirs: tuple[Path, list[Path]],
                                                          tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    content, styles = picture_dirs
    out = tmp_path / "run"
    Trainer(config(content, styles[:1], out, steps=1)).run()
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    ckpt["net_config"]["widths"] = [8, 16, 32, 64]
    torch.save(ckpt, out / "other.pt")
    assert run(["export", str(out / "other.pt"), "--models-dir", str(tmp_path / "m")]) == 2
    assert "do not fit" in capsys.readouterr().err


@pytest.mark.slow
def test_two_process_ddp_on_gloo(picture_dirs: tuple[Path, list[Path]], tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    content, styles = picture_dirs
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), "-m", "training.cli", "train", "--content", str(content),
           "--styles", *map(str, styles), "--out", str(out), "--steps", "3", "--batch-size", "1",
           "--crop-size", "32", "--style-size", "64", "--checkpoint-every", "3", "--threads", "1"]
    env = os.environ | {"GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["step"] == 3
    assert not any(k.startswith("module.") for k in ckpt["state_dict"])
