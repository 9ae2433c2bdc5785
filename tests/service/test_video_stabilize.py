"""The flicker metric on known answers, and stabilization lowering it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from clips import clip_frame, panning

from service.engine import Engine, RuntimeOptions
from service.look import LookUpdate
from service.stabilize import StabilizeOptions, Stabilizer
from service.video.flicker import FlickerMeter
from service.video.media import DecodedFrame
from service.video.pipeline import FrameStylizer, VideoOptions, stylized_frames


def noisy_stylization(index: int, rgb: np.ndarray) -> np.ndarray:
    """Independent per-frame noise: what flicker looks like."""
    noise = np.random.default_rng(index).normal(0, 20, rgb.shape)
    return np.clip(rgb + noise, 0, 255).astype(np.uint8)


def test_a_copy_of_the_input_scores_one_and_noise_scores_more() -> None:
    same, noisy = FlickerMeter(), FlickerMeter()
    for i in range(8):
        frame = clip_frame(i)
        same.add(frame, frame)
        noisy.add(frame, noisy_stylization(i, frame))
    assert abs(same.ratio - 1.0) < 1e-6
    assert noisy.ratio > 2


def test_stabilization_lowers_flicker() -> None:
    plain, steady = FlickerMeter(), FlickerMeter()
    stabilizer = Stabilizer(StabilizeOptions(blend=0.8))
    for i in range(12):
        frame = clip_frame(i)
        stylized = noisy_stylization(i, frame)
        plain.add(frame, stylized)
        steady.add(frame, stabilizer.step(frame, stylized))
    assert steady.ratio < 0.6 * plain.ratio


def test_both_consistency_checks_lower_flicker() -> None:
    for consistency in ("photometric", "flow"):
        plain, steady = FlickerMeter(), FlickerMeter()
        stabilizer = Stabilizer(StabilizeOptions(blend=0.8, consistency=consistency))  # type: ignore[arg-type]
        for i in range(12):
            frame = clip_frame(i)
            stylized = noisy_stylization(i, frame)
            plain.add(frame, stylized)
            steady.add(frame, stabilizer.step(frame, stylized))
        assert steady.ratio < 0.6 * plain.ratio, consistency


def test_photometric_check_distrusts_what_suddenly_changed() -> None:
    """A patch that changes colour between frames is not pulled toward the old output there."""
    stabilizer = Stabilizer(StabilizeOptions(blend=0.9, feather=0, flow_scale=1.0))
    first = np.full((64, 64, 3), 100, np.uint8)
    stabilizer.step(first, np.zeros_like(first))  # previous output: black
    second = first.copy()
    second[20:40, 20:40] = 250  # an object appears
    out = stabilizer.step(second, np.full_like(first, 200)).astype(int)
    assert abs(out[30, 30] - 200).max() <= 1  # changed: the fresh stylization stands
    assert abs(out[5, 5] - 20).max() <= 1  # unchanged: 0.9 of the warped black + 0.1 of 200


def repainted(index: int, rgb: np.ndarray) -> np.ndarray:
    """The frame with new fine strokes each time: a network repainting a moving view."""
    noise = np.random.default_rng(100 + index).normal(0, 1, rgb.shape).astype(np.float32)
    strokes = cv2.GaussianBlur(noise, (0, 0), 1.0)
    return np.clip(rgb + strokes / strokes.std() * 30, 0, 255).astype(np.uint8)


def fine_energy(image: np.ndarray) -> float:
    x = image.astype(np.float32)
    return float(np.mean((x - cv2.GaussianBlur(x, (0, 0), 2.0)) ** 2))


def test_under_camera_motion_the_strokes_are_given_back() -> None:
    """Blending misaligned strokes fades them; with detail restoration they keep most of their energy
    and the output is still steadier than the plain frames."""
    runs = {}
    for target in (0.0, 1.5):
        stabilizer, meter, plain = Stabilizer(StabilizeOptions(detail_target=target)), FlickerMeter(), FlickerMeter()
        energies, fresh = [], []
        for i in range(24):
            frame = panning(i)
            stylized = repainted(i, frame)
            out = stabilizer.step(frame, stylized)
            meter.add(frame, out)
            plain.add(frame, stylized)
            if i >= 8:
                energies.append(fine_energy(out))
                fresh.append(fine_energy(stylized))
        runs[target] = (np.mean(energies) / np.mean(fresh), meter.ratio / plain.ratio)
    faded, kept = runs[0.0][0], runs[1.5][0]
    assert faded < 0.6 and kept > 0.8, runs
    assert runs[1.5][1] < 0.9, runs  # still steadier than the plain frames


def test_the_memory_keeps_its_strokes_sharp_under_sub_pixel_motion() -> None:
    """Strokes that follow the camera exactly, the camera moving 2.5 px a frame: the memory is warped again
    every frame, and a bilinear warp would blur it a little more each time (half a pixel is a [0.5, 0.5]
    filter); the blend alone (no detail restoration) must keep the fresh frames' fine detail."""
    rng = np.random.default_rng(3)
    scene = cv2.GaussianBlur(rng.uniform(0, 255, (96, 320, 3)).astype(np.float32), (0, 0), 4.0)
    scene = (scene - scene.mean()) / scene.std() * 40 + 128
    strokes = cv2.GaussianBlur(rng.normal(0, 1, scene.shape).astype(np.float32), (0, 0), 0.8)
    painted = scene + strokes / strokes.std() * 30

    def view(image: np.ndarray, index: int) -> np.ndarray:
        move = np.float32([[1, 0, -2.5 * index], [0, 1, 0]])
        return np.clip(cv2.warpAffine(image, move, (128, 96), flags=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)

    def kept(warp: str) -> float:
        options = StabilizeOptions(detail_target=0.0, moving_blend=StabilizeOptions.blend, moving_warp=warp)  # type: ignore[arg-type]
        stabilizer, ratios = Stabilizer(options), []
        for i in range(16):
            fresh = view(painted, i)
            out = stabilizer.step(view(scene, i), fresh)
            if i >= 8:
                ratios.append(fine_energy(out[8:-8, 8:-24]) / fine_energy(fresh[8:-8, 8:-24]))
        return min(ratios)

    assert StabilizeOptions.moving_warp == "cubic"
    assert kept("cubic") > 0.8
    assert kept("linear") < 0.6  # what the bilinear memory kept: the blur this option is for


def test_under_camera_motion_the_blend_is_at_most_the_moving_blend() -> None:
    def keep_after_two(options: StabilizeOptions, frames: list[np.ndarray]) -> float:
        stabilizer = Stabilizer(options)
        stabilizer.step(frames[0], repainted(0, frames[0]))
        keep = stabilizer.motion(frames[1]).keep
        assert keep is not None
        return float(keep.max())

    panned, still = [panning(0), panning(1)], [panning(0), panning(0)]
    assert keep_after_two(StabilizeOptions(blend=0.9, moving_blend=0.7), panned) == pytest.approx(0.7, abs=1e-4)
    assert keep_after_two(StabilizeOptions(blend=0.5, moving_blend=0.7), panned) == pytest.approx(0.5, abs=1e-4)
    assert keep_after_two(StabilizeOptions(blend=0.9, moving_blend=0.7), still) == pytest.approx(0.9, abs=1e-4)


def test_a_still_camera_is_left_exactly_as_the_blend_makes_it() -> None:
    plain_blend = StabilizeOptions(detail_target=0.0, moving_blend=StabilizeOptions.blend)
    with_detail, without = Stabilizer(StabilizeOptions()), Stabilizer(plain_blend)
    frame = panning(0)
    for i in range(6):
        stylized = repainted(i, frame)
        np.testing.assert_array_equal(with_detail.step(frame, stylized), without.step(frame, stylized))


def test_stabilize_options_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="consistency"):
        StabilizeOptions(consistency="magic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tolerance"):
        StabilizeOptions(photometric_tolerance=0)
    with pytest.raises(ValueError, match="detail target"):
        StabilizeOptions(detail_target=-1)
    with pytest.raises(ValueError, match="moving blend"):
        StabilizeOptions(moving_blend=1.0)
    with pytest.raises(ValueError, match="camera motion"):
        StabilizeOptions(camera_motion_px=0)
    with pytest.raises(ValueError, match="moving warp"):
        StabilizeOptions(moving_warp="nearest")  # type: ignore[arg-type]


def test_upscaled_source_maps_match_resizing_the_flow() -> None:
    from service.flow import resize_flow, source_grid, upscaled_source_maps

    rng = np.random.default_rng(0)
    small = cv2.GaussianBlur(rng.normal(0, 3, (24, 32, 2)).astype(np.float32), (9, 9), 0)
    maps = upscaled_source_maps(small, 48, 64)
    map_x, map_y = source_grid(resize_flow(small, 48, 64))
    inner = (slice(1, -1), slice(1, -1))
    np.testing.assert_allclose(maps[..., 0][inner], map_x[inner], atol=1e-3)
    np.testing.assert_allclose(maps[..., 1][inner], map_y[inner], atol=1e-3)
    # the outermost pixels clamp to the small grid's edge instead of extrapolating: half a pixel at most
    assert np.abs(maps[..., 0] - map_x).max() <= 0.5 + 1e-3 and np.abs(maps[..., 1] - map_y).max() <= 0.5 + 1e-3


def test_overlapped_finds_the_motion_while_the_network_runs_and_matches_step() -> None:
    """The flow and the warp run on the pool's thread during ``stylize``; the frames are the same as ``step``'s."""
    serial = Stabilizer(StabilizeOptions())
    overlapped = Stabilizer(StabilizeOptions())
    found = threading.Event()
    motion = overlapped.motion

    def watched_motion(rgb: np.ndarray):  # type: ignore[no-untyped-def]
        try:
            return motion(rgb)
        finally:
            found.set()

    overlapped.motion = watched_motion  # type: ignore[method-assign]
    seen_during_stylize = []
    with ThreadPoolExecutor(1) as pool:
        for i in range(8):
            frame, stylized = clip_frame(i), noisy_stylization(i, clip_frame(i))
            found.clear()

            def stylize(stylized: np.ndarray = stylized) -> np.ndarray:
                seen_during_stylize.append(found.wait(10))  # would time out if the motion waited for us
                return stylized

            np.testing.assert_array_equal(overlapped.overlapped(frame, stylize, pool), serial.step(frame, stylized))
    assert seen_during_stylize == [True] * 8


def test_a_failed_stylization_leaves_the_memory_as_it_was() -> None:
    reference, failing = Stabilizer(StabilizeOptions()), Stabilizer(StabilizeOptions())

    def broken() -> np.ndarray:
        raise RuntimeError("inference failed")

    with ThreadPoolExecutor(1) as pool:
        for i in range(6):
            frame, stylized = clip_frame(i), noisy_stylization(i, clip_frame(i))
            if i == 3:
                with pytest.raises(RuntimeError, match="inference failed"):
                    failing.overlapped(frame, broken, pool)
                continue
            expected = reference.step(frame, stylized)
            np.testing.assert_array_equal(failing.overlapped(frame, lambda s=stylized: s, pool), expected)


@pytest.mark.parametrize("workers", [1, 2])
def test_video_pipeline_stabilizes_like_one_frame_at_a_time(models_dir: Path, workers: int) -> None:
    """stylized_frames finds each motion while the workers stylize: same frames as the plain loop."""
    engine = Engine.load(models_dir, RuntimeOptions())
    options = VideoOptions(look=LookUpdate(stabilize=True), workers=workers)
    frames = [DecodedFrame(i, i / 10, clip_frame(i)) for i in range(8)]
    size = frames[0].rgb.shape[:2]
    piped = [out for _, out in stylized_frames(iter(frames), FrameStylizer(engine, options, size), print)]
    one_by_one = FrameStylizer(engine, options, size)
    plain = [one_by_one.finish(f.rgb, one_by_one.stylize(f.rgb, f.seconds)) for f in frames]
    assert len(piped) == len(plain) == 8
    for got, expected in zip(piped, plain, strict=True):
        np.testing.assert_array_equal(got, expected)
    naive = FrameStylizer(engine, VideoOptions(), size)
    assert not np.array_equal(plain[-1], naive.stylize(frames[-1].rgb, frames[-1].seconds))  # it did stabilize


def test_a_models_calibrated_moving_blend_fills_only_an_unset_one() -> None:
    assert StabilizeOptions().calibrated(0.8).moving_blend == 0.8
    assert StabilizeOptions(moving_blend=0.5).calibrated(0.8).moving_blend == 0.5  # a chosen value stays
    assert StabilizeOptions().calibrated(None).moving_blend is None
    clip = [(panning(i), repainted(i, panning(i))) for i in range(6)]
    unset, default, stronger = (Stabilizer(StabilizeOptions(moving_blend=b)) for b in (None, 0.7, 0.8))
    for frame, stylized in clip:
        a, b, c = unset.step(frame, stylized), default.step(frame, stylized), stronger.step(frame, stylized)
        np.testing.assert_array_equal(a, b)  # unset: the stabilizer's default, 0.7
    assert np.abs(c.astype(int) - b).mean() > 0.5  # the camera pans 4 px a frame: the moving blend is in force
