"""Distillation: the student starts from the teacher's shared weights, learns its outputs, resumes, exports."""

from __future__ import annotations

import csv
import math
from dataclasses import fields
from pathlib import Path

import pytest
import torch

from service import contract
from training.checkpoint import CheckpointError, copy_matching, load_checkpoint, save_checkpoint
from training.cli import _run_fields, _train_config, build_parser, run
from training.distill import DistillConfig, Distiller
from training.export import export_checkpoint
from training.networks import TIER_CONFIGS, NetConfig, StyleNet, tier_config
from training.run import RunConfig

from .conftest import perturbed

STYLES = ["stripes", "checks", "dream_relu2_2"]
# The realtime tier's earlier layout: reflect padding everywhere, upsample-first decoder, pixel shuffle.
EARLIER = NetConfig(
    num_styles=3, widths=(16, 32, 64), res_blocks=5, in_kernel=3, out_kernel=3, stem_stride=2, separable=True
)


class Record:
    def __init__(self, body: dict[str, object]) -> None:
        self.body = body

    def to_json(self) -> dict[str, object]:
        return self.body


@pytest.fixture
def teacher(tmp_path: Path) -> Path:
    torch.manual_seed(1)
    path = tmp_path / "teacher.pt"
    record = Record(
        {"tier": "realtime", "style_images": ["s/stripes.png", "s/checks.png"], "dream_layers": ["relu2_2"]}
    )
    save_checkpoint(path, perturbed(StyleNet(EARLIER), seed=3), STYLES, 1234, record, None, {})
    return path


def config(teacher: Path, content: Path, out: Path, **kw: object) -> DistillConfig:
    base: dict[str, object] = dict(
        teachers=(teacher,),
        content_dir=content,
        out_dir=out,
        steps=30,
        batch_size=4,
        crop_size=32,
        lr=1e-2,
        checkpoint_every=5,
        preview_every=1000,
    )
    return DistillConfig(**(base | kw))  # type: ignore[arg-type]


def column(out: Path, name: str) -> list[float]:
    with (out / "log.csv").open() as handle:
        return [float(row[name]) for row in csv.DictReader(handle)]


def test_student_starts_with_the_teachers_encoder_blocks_and_norms() -> None:
    teacher = perturbed(StyleNet(EARLIER), seed=3)
    student = StyleNet(tier_config("realtime", 3))
    copied = copy_matching(student, teacher)
    last = f"res.{len(student.res) - 1}.conv2.conv.1.weight"  # a student with fewer blocks takes the first ones
    assert "down.0.conv.conv.weight" in copied and last in copied
    assert not any(k.startswith(f"res.{len(student.res)}.") for k in copied)
    assert "up.1.norm.gamma" in copied  # the per-style scale of every norm comes along
    assert not any(k.startswith("out.") for k in copied)  # the output layer differs in shape
    torch.testing.assert_close(student.res[2].norm1.beta, teacher.res[2].norm1.beta)


def test_distillation_moves_the_student_towards_the_teacher(
    picture_dirs: tuple[Path, list[Path]], teacher: Path, tmp_path: Path
) -> None:
    content, _ = picture_dirs
    Distiller(config(teacher, content, tmp_path / "run")).run()
    pixel = column(tmp_path / "run", "pixel")
    assert len(pixel) == 30
    assert sum(pixel[-5:]) / 5 < 0.8 * sum(pixel[:5]) / 5
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert ckpt["styles"] == STYLES and ckpt["step"] == 30
    assert ckpt["net_config"]["output"] == TIER_CONFIGS["realtime"]["output"]  # the tier's current design
    assert ckpt["train_config"]["distilled_from"][0]["config"]["decoder"] == "upsample_first"
    assert ckpt["train_config"]["dream_layers"] == ["relu2_2"]  # inherited: export and training see the styles


def test_resume_continues_from_the_saved_step(
    picture_dirs: tuple[Path, list[Path]], teacher: Path, tmp_path: Path
) -> None:
    content, _ = picture_dirs
    out = tmp_path / "run"
    Distiller(config(teacher, content, out, steps=10)).run()
    # a resumed run may change precision: the checkpoint holds float32 weights either way
    again = Distiller(config(teacher, content, out, steps=15, resume=True, lr=1e-3, precision="bf16"))
    assert again.step == 10
    assert [g["lr"] for g in again.optimizer.param_groups] == pytest.approx([1e-3, 1e-2])  # this run's rate
    again.run()
    steps = column(out, "total")
    assert len(steps) == 15 and all(math.isfinite(v) for v in steps)
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 15


def test_a_distilled_checkpoint_exports_under_the_contract(
    picture_dirs: tuple[Path, list[Path]], teacher: Path, tmp_path: Path
) -> None:
    content, _ = picture_dirs
    Distiller(config(teacher, content, tmp_path / "run", steps=5)).run()
    held_out = tuple(sorted(content.iterdir())[:2])  # the teacher's dream style is measured on them
    entry = export_checkpoint(tmp_path / "run" / "checkpoint.pt", tmp_path / "models", measure_on=held_out)
    assert entry.tier == "realtime" and list(entry.styles) == STYLES
    assert all(float(info["gain"]) > 0 for info in entry.dreams.values()) and entry.dreams
    assert entry.config["decoder"] == "project_first"
    assert contract.read_manifest(tmp_path / "models" / contract.MANIFEST_NAME)[0].name == "realtime"


def test_cli_bad_teacher_is_one_line_and_exit_2(
    picture_dirs: tuple[Path, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content, _ = picture_dirs
    bogus = tmp_path / "bogus.pt"
    bogus.write_text("not a checkpoint")
    code = run(["distill", "--teacher", str(bogus), "--content", str(content), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("livestyle-train: error:") and "\n" not in err
    code = run(
        [
            "distill",
            "--teacher",
            str(bogus),
            "--content",
            str(content),
            "--out",
            str(tmp_path / "o"),
            "--blend-fraction",
            "1.5",
        ]
    )
    assert code == 2 and "blend fraction" in capsys.readouterr().err


def test_init_from_starts_the_student_with_that_checkpoint(
    picture_dirs: tuple[Path, list[Path]], teacher: Path, tmp_path: Path
) -> None:
    content, _ = picture_dirs
    start = perturbed(StyleNet(tier_config("realtime", 3)), seed=7)
    path = tmp_path / "start.pt"
    save_checkpoint(path, start, STYLES, 50, Record({}), None, {})
    student = Distiller(config(teacher, content, tmp_path / "run", init_from=path)).net
    for name, tensor in start.state_dict().items():  # every tensor, the output layer too
        torch.testing.assert_close(student.state_dict()[name], tensor, msg=name)
    save_checkpoint(path, start, ["a", "b", "c"], 50, Record({}), None, {})
    with pytest.raises(CheckpointError, match="are not the teachers'"):
        Distiller(config(teacher, content, tmp_path / "other", init_from=path))


def test_train_and_distill_map_the_shared_run_flags_once(tmp_path: Path) -> None:
    shared = [
        "--content",
        "photos",
        "--out",
        str(tmp_path),
        "--steps",
        "7",
        "--batch-size",
        "3",
        "--crop-size",
        "96",
        "--scene-size",
        "480",
        "--lr",
        "5e-4",
        "--minutes",
        "2",
        "--precision",
        "bf16",
        "--exclude",
        "held_*",
        "--threads",
        "1",
        "--seed",
        "4",
        "--init-from",
        "start.pt",
    ]
    (tmp_path / "x.jpg").write_bytes(b"")  # only its presence is checked here
    train_args = build_parser().parse_args(["train", "--styles", str(tmp_path / "x.jpg"), *shared])
    train = _train_config(train_args, new_styles_only=False)
    distill = build_parser().parse_args(["distill", "--teacher", "t.pt", *shared])
    assert {f.name: getattr(train, f.name) for f in fields(RunConfig)} == _run_fields(distill)
    assert train.scene_size == 480 and train.init_from == Path("start.pt") and train.exclude == ("held_*",)
    defaults = build_parser().parse_args(["distill", "--teacher", "t.pt", "--content", "c", "--out", "o"])
    assert (defaults.steps, defaults.batch_size, defaults.lr) == (3000, 8, 2e-3)  # distill's own defaults


def test_two_teachers_each_teach_their_own_styles(
    picture_dirs: tuple[Path, list[Path]], teacher: Path, tmp_path: Path
) -> None:
    content, _ = picture_dirs
    second = tmp_path / "second.pt"
    record = Record({"tier": "realtime", "style_images": ["s/checks.png", "s/dots.png"], "dream_layers": []})
    save_checkpoint(
        second, perturbed(StyleNet(tier_config("realtime", 2)), seed=9), ["checks", "dots"], 77, record, None, {}
    )
    distiller = Distiller(config(teacher, content, tmp_path / "run", teachers=(teacher, second), steps=3))
    assert distiller.styles == [*STYLES, "dots"]  # checks stays with the first teacher
    photo = torch.rand(2, 3, 32, 32)
    dots = torch.nn.functional.one_hot(torch.tensor([3, 0]), 4).float()
    target = distiller.targets(photo, dots)
    with torch.no_grad():
        from_second = distiller.teachers[1].net(photo[:1], torch.tensor([[0.0, 1.0]]))
        from_first = distiller.teachers[0].net(photo[1:], torch.tensor([[1.0, 0.0, 0.0]]))
    torch.testing.assert_close(target[:1], from_second)
    torch.testing.assert_close(target[1:], from_first)
    distiller.run()
    saved = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert saved["styles"] == [*STYLES, "dots"]
    assert saved["train_config"]["style_images"] == ["s/stripes.png", "s/checks.png", "s/dots.png"]
    assert [t["styles"] for t in saved["train_config"]["distilled_from"]] == [STYLES, ["dots"]]
    with pytest.raises(CheckpointError, match="taught by an earlier teacher"):
        Distiller(config(teacher, content, tmp_path / "again", teachers=(teacher, teacher)))
