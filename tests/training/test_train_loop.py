"""Training on tiny pictures: the loss falls, resume continues, add-style leaves the old styles alone."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from training.checkpoint import CheckpointError, load_checkpoint
from training.cli import run
from training.train import TrainConfig, Trainer


def config(content: Path, styles: list[Path], out: Path, **kw: object) -> TrainConfig:
    base: dict[str, object] = dict(
        content_dir=content,
        style_images=tuple(styles),
        out_dir=out,
        steps=20,
        batch_size=2,
        crop_size=32,
        lr=1e-2,
        style_weight=1e-5,
        style_size=64,
        checkpoint_every=5,
        preview_every=1000,
    )
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


def test_the_shift_penalty_is_logged_and_trained(picture_dirs: tuple[Path, list[Path]], tmp_path: Path) -> None:
    content, styles = picture_dirs
    Trainer(config(content, styles[:1], tmp_path / "run", steps=6, shift_weight=10.0)).run()
    with (tmp_path / "run" / "log.csv").open() as handle:
        shifts = [float(row["shift"]) for row in csv.DictReader(handle)]
    assert len(shifts) == 6 and all(s > 0 for s in shifts)  # a strided network is not shift-equivariant


def test_the_motion_penalty_is_logged_and_trained(picture_dirs: tuple[Path, list[Path]], tmp_path: Path) -> None:
    content, styles = picture_dirs
    Trainer(config(content, styles[:1], tmp_path / "run", steps=4, motion_weight=10.0, motion_bend=2.0)).run()
    with (tmp_path / "run" / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and all(float(row["motion"]) > 0 for row in rows)  # an untrained net repaints
    relative = config(content, styles[:1], tmp_path / "relative", steps=2, motion_weight=10.0, motion_relative=True)
    Trainer(relative).run()
    with (tmp_path / "relative" / "log.csv").open() as handle:
        ratios = [float(row["motion"]) for row in csv.DictReader(handle)]
    assert len(ratios) == 2 and all(r > 0 for r in ratios)


def test_the_feature_motion_penalty_is_logged_and_trained(
    picture_dirs: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    content, styles = picture_dirs
    run_config = config(content, styles[:1], tmp_path / "run", steps=3, motion_weight=10.0, motion_feature_weight=1.0)
    Trainer(run_config).run()
    with (tmp_path / "run" / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and all(float(row["motion_features"]) > 0 for row in rows)
    Trainer(config(content, styles[:1], tmp_path / "off", steps=2, motion_weight=10.0)).run()
    with (tmp_path / "off" / "log.csv").open() as handle:
        assert all(float(row["motion_features"]) == 0.0 for row in csv.DictReader(handle))  # off: not computed


def test_the_motion_penalty_holds_paintings_and_leaves_dream_items_free(
    picture_dirs: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    content, styles = picture_dirs
    trainer = Trainer(config(content, styles[:1], tmp_path / "run", motion_weight=10.0, dream_layers=("relu2_1",)))
    frames = torch.rand(2, 3, 32, 32)
    weights = torch.eye(2)  # item 0 the painting, item 1 the dream
    with torch.no_grad():
        output = trainer.model(frames, weights).float()
        both, _ = trainer.motion_terms(frames, weights, output, None, torch.tensor([True, False]))
        neither, _ = trainer.motion_terms(frames, weights, output, None, torch.tensor([False, False]))
    assert float(both) > 0 and float(neither) == 0.0


def test_resume_continues_from_the_saved_step(picture_dirs: tuple[Path, list[Path]], tmp_path: Path) -> None:
    content, styles = picture_dirs
    out = tmp_path / "run"
    Trainer(config(content, styles, out, steps=5)).run()
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 5
    trainer = Trainer(config(content, styles, out, steps=8, resume=out / "checkpoint.pt", lr=2e-3))
    assert trainer.step == 5
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([2e-3, 2e-2])  # this run's rate
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
    trainer = Trainer(config(content, styles[1:], added, steps=6, resume=base / "checkpoint.pt", new_styles_only=True))
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


def test_cli_bad_input_is_one_line_and_exit_2(
    picture_dirs: tuple[Path, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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
        ["train", "--content", str(content), "--styles", str(styles[0]), "--out", str(tmp_path / "o")]
        + ["--motion-weight", "1", "--motion-bend", "-2"],
        ["train", "--content", str(content), "--styles", str(styles[0]), "--out", str(tmp_path / "o")]
        + ["--motion-relative"],
    ]
    for argv in cases:
        assert run(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("livestyle-train: error:"), err


def test_checkpoint_from_another_architecture_is_refused(
    picture_dirs: tuple[Path, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(port),
        "-m",
        "training.cli",
        "train",
        "--content",
        str(content),
        "--styles",
        *map(str, styles),
        "--out",
        str(out),
        "--steps",
        "3",
        "--batch-size",
        "1",
        "--crop-size",
        "32",
        "--style-size",
        "64",
        "--checkpoint-every",
        "3",
        "--threads",
        "1",
    ]
    env = os.environ | {"GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["step"] == 3
    assert not any(k.startswith("module.") for k in ckpt["state_dict"])


def dream_values(out: Path) -> list[float]:
    with (out / "log.csv").open() as handle:
        return [float(row["dream"]) for row in csv.DictReader(handle) if float(row["dream"]) != 0.0]


def test_only_styles_retrains_the_chosen_rows_and_nothing_else(
    picture_dirs: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    content, styles = picture_dirs
    base = tmp_path / "base"
    Trainer(config(content, styles, base, steps=3, dream_layers=("relu2_1",))).run()
    before = load_checkpoint(base / "checkpoint.pt")["state_dict"]
    trainer = Trainer(
        config(
            content,
            styles,
            tmp_path / "fix",
            steps=9,
            dream_layers=("relu2_1",),
            resume=base / "checkpoint.pt",
            only_styles=("dream_relu2_1",),
        )
    )
    assert trainer.styles == ["stripes", "checks", "dream_relu2_1"] and trainer.train_ids == [2]
    assert all(trainer.batch()[1].unique().tolist() == [2] for _ in range(3))  # only the chosen style
    trainer.run()
    after = load_checkpoint(tmp_path / "fix" / "checkpoint.pt")["state_dict"]
    moved = 0
    for name, old in before.items():
        if name.endswith((".gamma", ".beta")):
            torch.testing.assert_close(after[name][:2], old[:2], rtol=0, atol=0)
            moved += int(not torch.equal(after[name][2], old[2]))
        else:
            torch.testing.assert_close(after[name], old, rtol=0, atol=0)
    assert moved > 0
    with pytest.raises(ValueError, match="not in the checkpoint"):
        Trainer(
            config(
                content,
                styles,
                tmp_path / "x",
                dream_layers=("relu2_1",),
                resume=base / "checkpoint.pt",
                only_styles=("udnie",),
            )
        )
    with pytest.raises(ValueError, match="--resume-from"):
        config(content, styles, tmp_path / "y", only_styles=("stripes",))


def test_dream_style_learns_to_amplify_its_layer(picture_dirs: tuple[Path, list[Path]], tmp_path: Path) -> None:
    content, styles = picture_dirs
    out = tmp_path / "dream"
    # the dream objective alone (content and TV off): its log activation gain must climb
    trainer = Trainer(
        config(
            content,
            [],
            out,
            dream_layers=("relu2_1",),
            steps=16,
            dream_weights=(1.0,),
            content_weight=0.0,
            tv_weight=0.0,
        )
    )
    assert trainer.styles == ["dream_relu2_1"]
    trainer.run()
    gains = dream_values(out)
    assert len(gains) == 16
    assert sum(gains[-4:]) / 4 > sum(gains[:4]) / 4 + 0.3


def test_dream_styles_join_a_trained_painting_network(picture_dirs: tuple[Path, list[Path]], tmp_path: Path) -> None:
    content, styles = picture_dirs
    base = tmp_path / "base"
    Trainer(config(content, styles, base, steps=3)).run()
    grown = tmp_path / "grown"
    trainer = Trainer(config(content, styles, grown, steps=6, dream_layers=("relu3_1",), resume=base / "checkpoint.pt"))
    assert trainer.step == 3 and trainer.styles == ["stripes", "checks", "dream_relu3_1"]
    trainer.run()
    ckpt = load_checkpoint(grown / "checkpoint.pt")
    assert ckpt["step"] == 6 and ckpt["net_config"]["num_styles"] == 3
    # a different list (not the old styles followed by new ones) is refused
    with pytest.raises(CheckpointError, match="differ"):
        Trainer(config(content, styles[1:], tmp_path / "x", dream_layers=("relu3_1",), resume=grown / "checkpoint.pt"))


def test_export_records_each_dream_layer_and_its_gain(picture_dirs: tuple[Path, list[Path]], tmp_path: Path) -> None:
    from service import contract
    from training.export import export_checkpoint

    content, styles = picture_dirs
    out = tmp_path / "run"
    previews = tuple(sorted(content.iterdir())[:2])
    Trainer(
        config(
            content, styles[:1], out, steps=12, dream_layers=("relu2_1",), dream_weights=(1e4,), preview_images=previews
        )
    ).run()
    entry = export_checkpoint(out / "checkpoint.pt", tmp_path / "models")
    assert entry.styles == ("stripes", "dream_relu2_1")
    assert entry.dreams["dream_relu2_1"]["layer"] == "relu2_1"
    assert entry.dreams["dream_relu2_1"]["gain"] > 0 and len(entry.dreams["dream_relu2_1"]["measured_on"]) == 2
    assert any("DeepDream" in c for c in entry.credits)
    (read,) = contract.read_manifest(tmp_path / "models" / contract.MANIFEST_NAME)
    assert read.dreams == entry.dreams


def test_unknown_dream_layer_is_one_line_exit_2(
    picture_dirs: tuple[Path, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content, _ = picture_dirs
    assert run(["train", "--content", str(content), "--dream", "fc7", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown dream layer" in err[0] and "relu3_3" in err[0]


def test_minutes_stop_training_early_and_save(picture_dirs: tuple[Path, list[Path]], tmp_path: Path) -> None:
    content, styles = picture_dirs
    trainer = Trainer(
        config(content, styles[:1], tmp_path / "run", steps=100_000, minutes=1e-4, checkpoint_every=100_000)
    )
    trainer.run()
    assert 1 <= trainer.step < 100_000
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == trainer.step
    with pytest.raises(ValueError, match="minutes"):
        config(content, styles[:1], tmp_path / "x", minutes=-1.0)


def test_bf16_steps_track_fp32_and_keep_float32_weights(picture_dirs: tuple[Path, list[Path]], tmp_path: Path) -> None:
    content, styles = picture_dirs
    first = {}
    for precision in ("fp32", "bf16-loss", "bf16"):
        torch.manual_seed(0)
        trainer = Trainer(config(content, styles[:2], tmp_path / precision, precision=precision))
        first[precision] = trainer.train_step()  # same seed: the same crops, styles and initial weights
        assert all(p.dtype == torch.float32 for p in trainer.net.parameters())
        assert all(torch.isfinite(torch.tensor(v)) for v in first[precision].values())
    for precision in ("bf16-loss", "bf16"):
        for key in ("content", "style"):
            assert first[precision][key] == pytest.approx(first["fp32"][key], rel=0.05), (precision, key)
    assert first["bf16"]["content"] != first["fp32"]["content"]  # bfloat16 really ran
    with pytest.raises(ValueError, match="precision"):
        config(content, styles[:1], tmp_path / "x", precision="fp16")


def test_bf16_on_a_cpu_without_bf16_hardware_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from training.loop import warn_if_slow_bf16

    for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda: False, raising=False)
    warn_if_slow_bf16(torch.device("cpu"), "fp32")
    assert not caplog.records
    warn_if_slow_bf16(torch.device("cpu"), "bf16")
    assert len(caplog.records) == 1 and "slower than fp32" in caplog.records[0].getMessage()


class _RunsCode:
    """Unpickling this would create a file: what a hostile checkpoint does with weights_only=False."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))  # opening for writing creates the file


def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "pwned"
    hostile = tmp_path / "hostile.pt"
    torch.save({"format": 1, "net_config": {}, "payload": _RunsCode(marker)}, hostile)
    with pytest.raises(CheckpointError, match="would run code"):
        load_checkpoint(hostile)
    assert not marker.exists()
    assert run(["export", str(hostile), "--models-dir", str(tmp_path / "models")]) == 2  # the CLI: one line, exit 2
    assert not marker.exists() and "would run code" in capsys.readouterr().err
