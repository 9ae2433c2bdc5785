"""Table 13's parts: the handheld re-shoot of a clip, the sampled measurement and the verdicts."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from service.stabilize import StabilizeOptions
from service.video.flicker import Measurement
from training.bench.steady import Shake, SteadyPlan, SteadyResult, handheld_clip, steady_table


def _textured_video(path: Path, frames: int) -> Path:
    """A still, textured 96x72 scene (the camera's shake is all the motion there is)."""
    rng = np.random.default_rng(3)
    scene = cv2.resize(rng.integers(0, 255, (18, 24, 3)).astype(np.uint8), (96, 72), interpolation=cv2.INTER_CUBIC)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"FFV1"), 10, (96, 72))
    for _ in range(frames):
        writer.write(scene)
    writer.release()
    return path


def test_the_shake_is_seeded_bounded_and_as_strong_as_asked() -> None:
    shake = Shake(step_px=5.0, keep=0.85, margin=48, seed=1)
    path = shake.path(400)
    assert np.array_equal(path, shake.path(400)) and not np.array_equal(path, Shake(seed=2).path(400))
    assert np.abs(path[:, :2]).max() <= 48 * 0.75
    stationary = 5.0 / np.sqrt(1 - 0.85**2)  # the AR(1) process's own spread
    assert 0.6 * stationary < path[:, :2].std() < 1.4 * stationary
    assert 0.05 < path[:, 2].std() < 1.0


def test_the_handheld_clip_moves_as_the_shake_says(tmp_path: Path) -> None:
    source = _textured_video(tmp_path / "still.avi", 6)
    shake = Shake(step_px=6.0, step_deg=0.0, seed=4)
    path = handheld_clip(source, tmp_path / "handheld.avi", 10, shake)
    assert len(path) == 6  # the source ran out first
    capture = cv2.VideoCapture(str(tmp_path / "handheld.avi"))
    frames = []
    while (read := capture.read())[0]:
        frames.append(cv2.cvtColor(read[1], cv2.COLOR_BGR2GRAY).astype(np.float64))
    assert len(frames) == 6 and frames[0].shape == (480, 640)
    window = cv2.createHanningWindow((640, 480), cv2.CV_64F)
    for t in range(1, 6):  # the scene moves against the window: by minus the change of the offset
        (dx, dy), _ = cv2.phaseCorrelate(frames[t - 1], frames[t], window)
        expected = -(path[t, :2] - path[t - 1, :2])
        assert np.hypot(dx - expected[0], dy - expected[1]) < 1.0, (t, (dx, dy), expected)


def test_a_video_that_cannot_be_read_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "broken.avi").write_bytes(b"not a video")
    with pytest.raises(OSError, match="broken.avi"):
        handheld_clip(tmp_path / "broken.avi", tmp_path / "out.avi", 5, Shake())


def test_the_table_says_meets_and_misses_by_the_goals(tmp_path: Path) -> None:
    plan = SteadyPlan(
        source=tmp_path / "vtest.avi",
        runs=(("rt", "wave"), ("rt", "scream")),
        paintings={"wave": tmp_path / "w.jpg", "scream": tmp_path / "s.jpg"},
    )
    results = {
        ("rt", "wave", False): SteadyResult(2.0, 1e11, 3e5, 60, 40.0),
        ("rt", "wave", True): SteadyResult(0.6, 1.1e11, 3e5, 60, 32.0),  # 0.30x flicker, 1.10x style, +25%
        ("rt", "scream", False): SteadyResult(1.0, 1e11, 3e5, 60, 40.0),
        ("rt", "scream", True): SteadyResult(0.7, 1.3e11, 2.7e5, 60, 40.0),
    }  # 0.70x, 1.30x
    table = steady_table(plan, results, Shake().path(60))
    assert table.rows[0][5] == "0.30" and table.rows[0][8] == "1.10" and table.rows[1][9] == "0.90"
    assert table.rows[0][10:] == ["40.0", "32.0", "+25%"] and table.rows[1][12] == "+0%"
    assert "flicker 0.30x plain (meets" in table.verdicts[0] and "style 1.10x plain (meets" in table.verdicts[0]
    assert "(MISSES <= 0.5x)" in table.verdicts[1] and "(MISSES <= 1.15x)" in table.verdicts[1]
    assert "translation std" in table.setup


def test_measurement_samples_default_to_none() -> None:
    assert Measurement(3, 1.0, 10.0).samples == ()


def test_the_study_parses_variants_and_names_what_is_wrong() -> None:
    from training.bench.steady_study import parse_variant

    assert parse_variant("shipped:").options == StabilizeOptions()
    variant = parse_variant("soft: moving_warp=linear, moving_blend=0.8")
    assert variant.name == "soft" and variant.options == StabilizeOptions(moving_warp="linear", moving_blend=0.8)
    for bad in ("no colon", ":moving_blend=0.8", "x:colour=red", "x:moving_blend"):
        with pytest.raises(ValueError):
            parse_variant(bad)
    with pytest.raises(ValueError, match="moving blend"):
        parse_variant("x:moving_blend=1.5")
    assert parse_variant("x:moving_blend=none,feather=3").options == StabilizeOptions(moving_blend=None, feather=3)


def test_the_study_keeps_the_stylized_frames_it_was_asked_to_cache(tmp_path: Path) -> None:
    import argparse
    from types import SimpleNamespace

    from training.bench.steady_study import _stylized

    calls = []

    def stylize(frame: np.ndarray, weights: np.ndarray, model: str) -> np.ndarray:
        calls.append(model)
        return 255 - frame

    entry = SimpleNamespace(sha256="ab" * 32)
    engine = SimpleNamespace(stylize=stylize, model=lambda name: SimpleNamespace(entry=entry))
    args = argparse.Namespace(cache=tmp_path / "cache", model="realtime", video="clip.avi")
    frames = [np.full((4, 6, 3), i, np.uint8) for i in range(3)]
    first = _stylized(engine, args, "udnie", frames, np.ones((1, 1), np.float32), 0)  # type: ignore[arg-type]
    again = _stylized(engine, args, "udnie", frames, np.ones((1, 1), np.float32), 0)  # type: ignore[arg-type]
    assert len(calls) == 3  # the second time came from the cache
    np.testing.assert_array_equal(np.stack(again), np.stack(first))
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["realtime-abababababab-clip.avi-udnie-seed0-3.npy"]


def test_the_study_compares_variants_on_the_same_frames() -> None:
    """Strokes that follow a camera moving 2.5 px a frame: the bilinear memory loses their detail (a higher
    style proxy), the bicubic one keeps it; both are steadier than plain."""
    from training.bench.steady_study import compare, parse_variant

    rng = np.random.default_rng(5)
    scene = cv2.GaussianBlur(rng.uniform(0, 255, (96, 320, 3)).astype(np.float32), (0, 0), 4.0)
    scene = (scene - scene.mean()) / scene.std() * 40 + 128
    strokes = cv2.GaussianBlur(rng.normal(0, 1, scene.shape).astype(np.float32), (0, 0), 0.8)
    painted = scene + strokes / strokes.std() * 30

    def view(image: np.ndarray, index: int, jitter: int = 0) -> np.ndarray:
        move = np.float32([[1, 0, -2.5 * index], [0, 1, 0]])
        shown = cv2.warpAffine(image, move, (128, 96), flags=cv2.INTER_CUBIC)
        shown += np.random.default_rng(jitter).normal(0, 8, shown.shape).astype(np.float32) if jitter else 0
        return np.clip(shown, 0, 255).astype(np.uint8)

    frames = [view(scene, i) for i in range(18)]
    stylized = [view(painted, i, jitter=i + 1) for i in range(18)]  # repainted a little each frame: flicker

    def score(out: np.ndarray, frame: np.ndarray) -> tuple[float, float]:
        x = out[8:-8, 8:-24].astype(np.float32)
        detail = float(np.mean((x - cv2.GaussianBlur(x, (0, 0), 2.0)) ** 2))
        return 1.0 / detail, float(np.abs(x - frame[8:-8, 8:-24]).mean())

    variants = [
        parse_variant("bilinear:moving_warp=linear,detail_target=0"),
        parse_variant("bicubic:moving_warp=cubic,detail_target=0"),
    ]
    got = compare(frames, stylized, variants, score, sample_every=3)
    assert got["bicubic"].style < 0.8 * got["bilinear"].style, got
    assert got["bilinear"].flicker < 1.0 and got["bicubic"].flicker < 1.0, got
    assert got["bicubic"].stabilizer_ms > 0
    with pytest.raises(ValueError):
        compare(frames, stylized[:-1], variants, score)


def test_the_calibration_keeps_the_goals_then_the_painting() -> None:
    from training.bench.steady_study import Outcome, choose_moving_blend

    def rows(*cells: tuple[float, float, float]) -> list[Outcome]:
        return [Outcome(flicker, style, content, 1.0) for flicker, style, content in cells]

    outcomes = {
        0.6: rows((0.51, 1.2, 1.0), (0.45, 1.3, 1.0)),  # one row flickers over the goal
        0.7: rows((0.48, 1.4, 1.0), (0.47, 2.0, 1.0)),
        0.8: rows((0.40, 1.1, 1.0), (0.40, 1.3, 1.0)),  # the best worst row
        0.9: rows((0.38, 1.0, 1.12), (0.38, 1.0, 1.0)),  # the scene smeared (content 1.12x)
    }
    assert choose_moving_blend(outcomes) == 0.8
    assert choose_moving_blend({**outcomes, 0.85: rows((0.39, 1.3, 1.0), (0.39, 1.302, 1.0))}) == 0.85  # a tie
    # a painting that flickers over the goal at every blend does not decide; the fewest misses, then the style
    udnie = {
        0.65: rows((0.61, 1.5, 1.0), (0.49, 1.9, 1.0)),
        0.7: rows((0.60, 1.6, 1.0), (0.47, 2.0, 1.0)),
        0.6: rows((0.62, 1.4, 1.0), (0.51, 1.8, 1.0)),
    }
    assert choose_moving_blend(udnie) == 0.65
    with pytest.raises(ValueError, match="at least one row"):
        choose_moving_blend({0.7: []})


def test_a_calibration_is_recorded_in_the_manifest_and_only_there(tmp_path: Path) -> None:
    from service import contract
    from training.bench.steady_study import write_calibration

    entries = [
        contract.ModelEntry(name, f"{name}.onnx", "0" * 64, tier, ("a",), 4)
        for name, tier in (("realtime", "realtime"), ("quality", "quality"))
    ]
    contract.write_manifest(tmp_path / contract.MANIFEST_NAME, entries)
    write_calibration(tmp_path, "quality", 0.65)
    read = {e.name: e for e in contract.read_manifest(tmp_path / contract.MANIFEST_NAME)}
    assert read["quality"].moving_blend == 0.65 and read["realtime"].moving_blend is None
    with pytest.raises(ValueError, match="no model 'peer'"):
        write_calibration(tmp_path, "peer", 0.8)
    with pytest.raises(ValueError, match="moving_blend"):
        write_calibration(tmp_path, "quality", 1.0)


def test_the_farneback_judge_scores_a_copy_one_and_noise_more() -> None:
    from service.video.flicker import FlickerMeter
    from training.bench.steady_study import FarnebackFlow

    rng = np.random.default_rng(0)
    scene = cv2.GaussianBlur(rng.uniform(0, 255, (120, 200, 3)).astype(np.float32), (0, 0), 3.0)
    same, noisy = FlickerMeter(FarnebackFlow()), FlickerMeter(FarnebackFlow())
    for i in range(6):
        frame = np.clip(np.roll(scene, 2 * i, axis=1), 0, 255).astype(np.uint8)
        same.add(frame, frame)
        noise = rng.normal(0, 20, frame.shape)
        noisy.add(frame, np.clip(frame + noise, 0, 255).astype(np.uint8))
    assert abs(same.ratio - 1.0) < 1e-6 and noisy.ratio > 2
