"""livestyle-video end to end on tiny clips: timing and audio kept, frames stylized, clear errors."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from clips import FPS, FRAMES, HEIGHT, WIDTH, audio_packets, read_frames, write_clip
from conftest import STYLES, reference_output

from service import contract
from service.dream import missing_requirement
from service.engine import Engine, RuntimeOptions
from service.look import LookUpdate
from service.video.cli import main
from service.video.pipeline import VideoOptions, process_video
from service.video.schedule import parse_schedule


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4")


@pytest.fixture
def run(models_dir: Path, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run livestyle-video with the tiny models; returns (exit code, stderr)."""

    def invoke(*args: str | Path) -> tuple[int, str]:
        try:
            main([*map(str, args), "--models-dir", str(models_dir), "--quiet"])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        return code, capsys.readouterr().err

    return invoke


def test_keeps_frames_fps_duration_and_copies_audio(clip: Path, tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out.mp4"
    code, err = run(clip, out, "--style", "the_scream=1")
    assert code == 0, err
    with av.open(str(clip)) as src, av.open(str(out)) as dst:
        a, b = src.streams.video[0], dst.streams.video[0]
        assert (b.frames, b.average_rate, b.width, b.height) == (FRAMES, Fraction(FPS), WIDTH, HEIGHT)
        assert b.duration * b.time_base == a.duration * a.time_base
        assert dst.streams.video[0].codec_context.name == "h264"
        assert dst.streams.audio[0].codec_context.name == "aac"
    assert audio_packets(out) == audio_packets(clip)  # copied, not re-encoded
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_frames_are_stylized(clip: Path, tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out.mp4"
    assert run(clip, out, "--style", "starry_night=1")[0] == 0
    weights = contract.normalize_weights([1, 0, 0], len(STYLES))
    for source, result in zip(read_frames(clip), read_frames(out), strict=True):
        expected = reference_output(source, weights).astype(int)
        assert np.abs(result.astype(int) - expected).mean() < 4  # H.264 noise only: 2.3-2.8, 3.1 once under load
        assert np.abs(result.astype(int) - source).mean() > 40  # and far from the input


def test_schedule_moves_the_blend_over_time(clip: Path, tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    schedule = tmp_path / "journey.txt"
    schedule.write_text("# from negative to grey\n0 starry_night=1\n1.5s dream_relu3_3=1\n")
    out = tmp_path / "out.mp4"
    assert run(clip, out, "--schedule", schedule)[0] == 0
    source, result = read_frames(clip), read_frames(out)

    def distance(index: int, weights: list[float]) -> float:
        expected = reference_output(source[index], contract.normalize_weights(weights, 3))
        return float(np.abs(result[index].astype(int) - expected).mean())

    assert distance(0, [1, 0, 0]) < 3 < distance(0, [0, 0, 1])
    assert distance(9, [0.5, 0, 0.5]) < 3  # 0.75 s: halfway
    assert distance(FRAMES - 1, [0, 0, 1]) < 3 < distance(FRAMES - 1, [1, 0, 0])


def test_json_schedule_parses_like_text() -> None:
    text = parse_schedule("0 a=1\n2 b=1")
    data = parse_schedule('[{"time": 0, "weights": {"a": 1}}, {"time": 2, "weights": {"b": 1}}]')
    assert text == data
    track = data.for_styles(("a", "b"))
    np.testing.assert_allclose(track.at(0.5), [[0.75, 0.25]])
    np.testing.assert_allclose(track.at(9), [[0, 1]])


def test_truncated_file_reports_where_it_stopped(clip: Path, tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "broken.mp4"
    data = clip.read_bytes()
    broken.write_bytes(data[: len(data) * 6 // 10])
    out = tmp_path / "out.mp4"
    code, err = run(broken, out, "--style", "the_scream=1")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1
    stopped_at = len(read_frames(out))
    assert 0 < stopped_at < FRAMES
    assert f"ends at frame {stopped_at} of {FRAMES}" in lines[0] and "broken.mp4" in lines[0]


def write_zero_frames(clip: Path, path: Path) -> None:
    """The clip's header (which promises frames) without any of its media data."""
    data = clip.read_bytes()
    path.write_bytes(data[: data.index(b"mdat") + 4])


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("not_a_video", "not a video file"),
        ("zero_frames", "no video frames"),
        ("unknown_style", "unknown styles ['picasso']"),
        ("unwritable", "cannot write"),
        ("both_style_and_schedule", "not both"),
        ("negative_detail", "detail target must be in [0, 4]"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    case: str,
    message: str,
    clip: Path,
    tmp_path: Path,
    run,  # type: ignore[no-untyped-def]
) -> None:
    src, out, extra = clip, tmp_path / "out.mp4", ["--style", "the_scream=1"]
    if case == "not_a_video":
        src = tmp_path / "notes.mp4"
        src.write_text("these are not frames")
    elif case == "zero_frames":
        src = tmp_path / "empty.mp4"
        write_zero_frames(clip, src)
    elif case == "unknown_style":
        extra = ["--style", "picasso=1"]
    elif case == "unwritable":
        out = tmp_path / "missing-folder" / "out.mp4"
    elif case == "negative_detail":
        extra += ["--stabilize", "--stabilize-detail", "-1"]
    else:
        extra += ["--schedule", str(tmp_path / "x.txt")]
    before = set(tmp_path.rglob("*"))
    code, err = run(src, out, *extra)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert set(tmp_path.rglob("*")) == before


def test_interrupt_leaves_no_partial_file(clip: Path, tmp_path: Path, models_dir: Path) -> None:
    engine = Engine.load(models_dir, RuntimeOptions())
    out = tmp_path / "out.mp4"

    def interrupt(done: int, total: int | None) -> None:
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        process_video(clip, out, engine, VideoOptions(), interrupt)
    assert list(tmp_path.iterdir()) == []


def test_other_codec_and_container_and_stabilize(clip: Path, tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out.mkv"
    code, err = run(clip, out, "--codec", "ffv1", "--stabilize", "--stabilize-detail", "1.0", "--max-size", "32")
    assert code == 0, err
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("ffv1", 32, 24)
        assert sum(1 for _ in container.decode(video=0)) == FRAMES


@pytest.mark.skipif(missing_requirement() is not None, reason="the dream extra is not installed")
def test_dream_mode_dreams_every_frame_with_feedback(clip: Path, tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "dream.mp4"
    code, err = run(
        clip,
        out,
        "--mode",
        "dream",
        "--dream-layer",
        "relu3_1",
        "--dream-iterations",
        "2",
        "--dream-octaves",
        "1",
        "--dream-size",
        "64",
        "--dream-feedback",
        "0.8",
        "--dream-device",
        "cpu",
    )
    assert code == 0, err
    sources, dreamed = read_frames(clip), read_frames(out)
    assert len(dreamed) == len(sources) and dreamed[0].shape == sources[0].shape
    change = [float(np.abs(d.astype(int) - s).mean()) for s, d in zip(sources, dreamed, strict=True)]
    assert min(change) > 3  # every frame dreamed
    assert change[-1] > change[0]  # feedback: the dream deepens over the clip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dream.mp4"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--mode", "dream", "--dream-layer", "fc7"], "allowed"),
        (["--mode", "dream", "--dream-iterations", "0"], "iterations"),
        (["--mode", "dream", "--style", "the_scream=1"], "does not use --style"),
        (["--mode", "dream", "--engine", "ray"], "--engine local"),
    ],
)
def test_bad_dream_options_exit_2_with_one_line(
    extra: list[str], message: str, clip: Path, tmp_path: Path, run
) -> None:  # type: ignore[no-untyped-def]
    code, err = run(clip, tmp_path / "out.mp4", *extra)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_dream_mode_without_the_extra_names_it(
    clip: Path,
    tmp_path: Path,
    run,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from service import dream

    monkeypatch.setattr(dream.importlib.util, "find_spec", lambda name: None if name == "torch" else object())
    code, err = run(clip, tmp_path / "out.mp4", "--mode", "dream")
    assert code == 2 and "livestyle[dream]" in err, err
    assert list(tmp_path.iterdir()) == []


def rotate_display(path: Path) -> Path:
    """Give an MP4's video track the display matrix of a phone held upright (stored sideways, shown turned
    90 degrees clockwise), as phones write it: the tkhd box's matrix."""
    data = bytearray(path.read_bytes())
    box = data.find(b"tkhd")
    assert box > 0 and data[box + 4] == 0  # version 0 layout
    matrix = box + 4 + 40
    data[matrix : matrix + 36] = struct.pack(">9i", 0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30)
    out = path.with_name(f"{path.stem}-portrait.mp4")
    out.write_bytes(bytes(data))
    return out


def test_rotation_metadata_is_honoured(tmp_path: Path, models_dir: Path) -> None:
    still = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    still[:, : WIDTH // 2] = 255  # left half white, as stored
    plain = tmp_path / "sideways.mp4"
    with av.open(str(plain), mode="w") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(6):
            frame = av.VideoFrame.from_ndarray(still, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    portrait = rotate_display(plain)
    result = tmp_path / "upright.mp4"
    engine = Engine.load(models_dir, RuntimeOptions())
    process_video(portrait, result, engine, VideoOptions(look=LookUpdate(strength=0.0)))
    with av.open(str(result)) as container:
        shown = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert shown.shape[:2] == (WIDTH, HEIGHT)  # portrait now
    assert shown[: WIDTH // 2 - 4].mean() > 200 and shown[WIDTH // 2 + 4 :].mean() < 60  # white on top
