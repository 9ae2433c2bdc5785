"""The grid score (QUALITY-METRIC.md): a mesh at a 2- or 4-pixel period scores high, smooth pictures low."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from training.grid import bin_ratios, geometric_mean, grid_bins, grid_score, spectrum
from training.networks import NetConfig, StyleNet

H, W = 480, 640


def gradient() -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W] / np.array([H, W])[:, None, None]
    return np.stack([x, y, 0.5 * (x + y)], axis=-1)


def photo() -> np.ndarray:
    data = pytest.importorskip("skimage.data")
    from PIL import Image

    img = Image.fromarray(data.coffee()).resize((W, H), Image.Resampling.LANCZOS)
    return np.asarray(img).astype(np.float64) / 255


def test_fifteen_bins_at_quarters_of_each_side() -> None:
    bins = grid_bins(H, W)
    assert len(bins) == 15 and (0, 0) not in bins
    assert (H // 2, W // 2) in bins and (3 * H // 4, W // 4) in bins


def pattern(kind: str) -> np.ndarray:
    """[H,W,3] zero-mean patterns: a checkerboard of 2-pixel squares (period 4), a random 4x4 tile (a mesh
    with every harmonic of periods 2 and 4, as a sub-pixel decoder paints it), 1-pixel squares (period 2)."""
    y, x = np.indices((H, W))
    if kind == "checkerboard":
        base = (y // 2 + x // 2) % 2 - 0.5
    elif kind == "mesh":
        base = np.tile(np.random.default_rng(1).random((4, 4)) - 0.5, (H // 4, W // 4))
    else:
        base = (y + x) % 2 - 0.5
    return np.repeat(base[..., None], 3, axis=-1)


def test_a_checkerboard_and_a_mesh_score_high() -> None:
    floor = np.random.default_rng(0).normal(0, 0.01, (H, W, 1))  # a grey wall with sensor noise
    assert grid_score(0.5 + floor + 0.2 * pattern("checkerboard")) > 20
    assert grid_score(0.5 + floor + 0.2 * pattern("mesh")) > 1000
    assert grid_score(np.clip(photo() + 0.05 * pattern("checkerboard"), 0, 1)) > 10


def test_smooth_pictures_score_about_one_or_less() -> None:
    assert grid_score(gradient()) < 2
    assert grid_score(photo()) < 2
    noise = np.random.default_rng(0).random((H, W, 3))
    assert 0.3 < grid_score(noise) < 3  # white noise: every bin like its neighbours


def test_a_faint_mesh_on_a_photo_is_found() -> None:
    assert grid_score(np.clip(photo() + 0.02 * pattern("mesh"), 0, 1)) > 50 * grid_score(photo())


def test_a_one_pixel_checkerboard_lights_one_bin_of_fifteen() -> None:
    """Period 2 in both directions is the single bin (H/2, W/2): it counts with weight 1/15."""
    ratios = bin_ratios(spectrum(np.clip(photo() + 0.04 * pattern("pixels"), 0, 1)))
    bins = grid_bins(H, W)
    assert ratios[bins.index((H // 2, W // 2))] > 1000
    assert grid_score(np.clip(photo() + 0.04 * pattern("pixels"), 0, 1)) > 1.5 * grid_score(photo())


def test_uint8_and_float_frames_agree() -> None:
    frame = photo()
    as_bytes = np.round(frame * 255).astype(np.uint8)
    assert grid_score(as_bytes) == pytest.approx(grid_score(as_bytes / 255.0), rel=1e-9)


def test_bad_shapes_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="multiples of 4"):
        grid_score(np.zeros((482, 640, 3)))
    with pytest.raises(ValueError, match="RGB"):
        spectrum(np.zeros((480, 640)))
    with pytest.raises(ValueError):
        geometric_mean([])


def test_ratios_are_one_per_bin() -> None:
    assert bin_ratios(spectrum(gradient())).shape == (15,)


@pytest.mark.parametrize("output", ["transposed", "upsampled"])
def test_untrained_decoders_on_a_flat_frame(output: str) -> None:
    """A sub-pixel (transposed) output whose four kernels differ paints a mesh over a flat, faintly noisy
    area; the resize-convolution output cannot, whatever its weights."""
    torch.manual_seed(0)
    cfg = NetConfig(
        num_styles=1,
        widths=(8, 16, 32),
        res_blocks=1,
        in_kernel=3,
        out_kernel=3,
        stem_stride=2,
        separable=True,
        padding="edges",
        decoder="project_first",
        output=output,
        upsample="bilinear" if output == "upsampled" else "nearest",
    )
    net = StyleNet(cfg).eval()
    with torch.no_grad():
        for p in net.out.parameters():
            p.normal_(0, 0.5)
        flat = 0.5 + 0.01 * torch.rand(1, 3, H, W)
        out = net(flat, torch.ones(1, 1))[0].permute(1, 2, 0).numpy()
    score = grid_score(out)
    if output == "transposed":
        assert score > 10
    else:
        assert score < 2


def test_the_training_penalty_sees_the_mesh_and_has_a_gradient() -> None:
    from training.losses import grid_penalty

    photo_t = torch.from_numpy(photo()[:256, :256].copy()).permute(2, 0, 1)[None].float()
    mesh = torch.from_numpy(pattern("mesh")[:256, :256].copy()).permute(2, 0, 1)[None].float()
    clean = float(grid_penalty(photo_t))
    meshed = (photo_t + 0.05 * mesh).requires_grad_(True)
    loss = grid_penalty(meshed)
    assert clean < 0.5 < float(loss)
    loss.backward()
    assert meshed.grad is not None and float(meshed.grad.abs().sum()) > 0


def mesh8(size: tuple[int, int]) -> np.ndarray:
    """A checkerboard of 4-pixel squares: a lattice with an 8-pixel period whose harmonics are all at odd
    eighths of the side, none at the quarters the defined score takes."""
    y, x = np.indices(size)
    return np.repeat(((y // 4 + x // 4) % 2 - 0.5)[..., None], 3, axis=-1)


def test_an_8_pixel_mesh_is_seen_at_eighths_and_not_at_quarters() -> None:
    assert len(grid_bins(H, W, divisions=8)) == 63
    assert set(grid_bins(H, W)) <= set(grid_bins(H, W, divisions=8))
    lattice = np.clip(photo() + 0.05 * mesh8((H, W)), 0, 1)
    assert grid_score(photo(), divisions=8) < 2
    assert grid_score(lattice, divisions=8) > 4 * grid_score(photo(), divisions=8)
    quarters = bin_ratios(spectrum(lattice))
    eighths = bin_ratios(spectrum(lattice), divisions=8)
    assert eighths.max() > 100 and geometric_mean(list(quarters)) < 2 < geometric_mean(list(eighths))
    with pytest.raises(ValueError, match="divisions"):
        grid_score(photo(), divisions=6)
    with pytest.raises(ValueError, match="multiples of 8"):
        grid_score(photo()[:, :636], divisions=8)


def test_the_training_penalty_at_eighths_sees_the_8_pixel_mesh() -> None:
    from training.losses import grid_penalty

    photo_t = torch.from_numpy(photo()[:256, :256].copy()).permute(2, 0, 1)[None].float()
    meshed = photo_t + 0.05 * torch.from_numpy(mesh8((256, 256))).permute(2, 0, 1)[None].float()
    assert float(grid_penalty(meshed, divisions=8)) > 2 * float(grid_penalty(meshed))
    assert float(grid_penalty(photo_t, divisions=8)) < 0.5
    with pytest.raises(ValueError, match="divisions"):
        grid_penalty(photo_t, divisions=3)


def test_the_shift_penalty_is_zero_for_a_moving_picture_and_sees_a_pattern_locked_to_the_grid() -> None:
    from training.losses import shift_penalty

    frame = torch.from_numpy(photo()[:128, :128].copy()).permute(2, 0, 1)[None].float()

    def blur(x: torch.Tensor) -> torch.Tensor:  # shift-equivariant away from the borders
        return torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1)

    def meshed(x: torch.Tensor) -> torch.Tensor:  # rows 0-1 of every 4 darker: locked to the tensor's own rows
        rows = (torch.arange(x.shape[-2]) % 4 < 2).float()[:, None]
        return blur(x) - 0.05 * rows

    output = blur(frame)
    assert float(shift_penalty(blur, frame, output, (3, 5))) < 1e-10
    locked = meshed(frame).requires_grad_(True)
    assert float(shift_penalty(meshed, frame, locked, (2, 0))) > 1e-3  # moved 2 rows: the mesh is inverted
    assert float(shift_penalty(meshed, frame, meshed(frame), (4, 0))) < 1e-10  # a whole period: no change
    loss = shift_penalty(meshed, frame, locked, (1, 1))
    loss.backward()
    assert locked.grad is not None and float(locked.grad.abs().sum()) > 0
    with pytest.raises(ValueError):
        shift_penalty(blur, frame, output, (9, 0))


def test_the_motion_penalty_passes_strokes_that_follow_the_camera_and_fails_a_pattern_fixed_to_the_frame() -> None:
    from training.losses import motion_penalty

    torch.manual_seed(0)
    frame = torch.rand(2, 3, 128, 160)
    move = (3.5, -2.2, 0.8, 1.02)

    def colour(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x + 0.1

    assert float(motion_penalty(colour, frame, colour(frame), move)) < 1e-10  # painted on the content
    mesh = torch.zeros(1, 1, 128, 160)
    mesh[..., ::2, :] = 0.3

    def fixed(x: torch.Tensor) -> torch.Tensor:
        return colour(x) + mesh

    assert float(motion_penalty(fixed, frame, fixed(frame), move)) > 1e-2  # stays put while the camera moves
    assert float(motion_penalty(fixed, frame, fixed(frame), (0.0, 0.0, 0.0, 1.0))) < 1e-10  # no move, no cost
    with pytest.raises(ValueError, match="zoom"):
        motion_penalty(colour, frame, colour(frame), (0.0, 0.0, 0.0, 0.0))


def test_the_relative_motion_penalty_is_not_passed_by_painting_with_less_contrast() -> None:
    from training.losses import motion_penalty

    torch.manual_seed(0)
    frame = torch.rand(2, 3, 128, 160)
    move = (3.5, -2.2, 0.8, 1.02)
    mesh = torch.zeros(1, 1, 128, 160)
    mesh[..., ::2, :] = 0.3

    def fixed(contrast: float) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda x: 0.5 + contrast * (0.5 * x + mesh - 0.5)

    strong, faint = fixed(1.0), fixed(0.25)
    absolute = [float(motion_penalty(f, frame, f(frame), move)) for f in (strong, faint)]
    relative = [float(motion_penalty(f, frame, f(frame), move, relative=True)) for f in (strong, faint)]
    assert absolute[1] == pytest.approx(absolute[0] / 16, rel=1e-3)  # a quarter of the contrast: 1/16 the cost
    assert relative[1] == pytest.approx(relative[0], rel=1e-3) and relative[0] > 0.1
    output = strong(frame).requires_grad_(True)
    motion_penalty(strong, frame, output, move, relative=True).backward()
    assert output.grad is not None and float(output.grad.abs().sum()) > 0  # through the variance too


def test_a_bent_move_still_passes_strokes_on_the_content_and_fails_a_fixed_pattern() -> None:
    from training.losses import motion_penalty, smooth_bend

    torch.manual_seed(0)
    frame = torch.nn.functional.interpolate(torch.rand(2, 3, 16, 20), size=(128, 160), mode="bicubic")
    move = (1.5, -0.5, 0.3, 1.0)
    bend = smooth_bend(2, 128, 160, 3.0, torch.Generator().manual_seed(1))
    assert bend.shape == (2, 128, 160, 2) and float(bend.abs().max()) <= 3.0 and float(bend.abs().max()) > 1.0
    assert float((bend[:, 1:] - bend[:, :-1]).abs().max()) < 0.2  # smooth: no tearing between neighbours

    def colour(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x + 0.1

    assert float(motion_penalty(colour, frame, colour(frame), move, bend=bend)) < 1e-10
    mesh = torch.zeros(1, 1, 128, 160)
    mesh[..., ::2, :] = 0.3

    def fixed(x: torch.Tensor) -> torch.Tensor:
        return colour(x) + mesh

    # bending alone (no rigid move) is a move: a pattern fixed to the frame fails it
    assert float(motion_penalty(fixed, frame, fixed(frame), (0.0, 0.0, 0.0, 1.0), bend=bend)) > 1e-2
    assert torch.equal(bend, smooth_bend(2, 128, 160, 3.0, torch.Generator().manual_seed(1)))  # seeded
    assert float(smooth_bend(1, 8, 8, 0.0, torch.Generator()).abs().max()) == 0.0
    with pytest.raises(ValueError, match="bend must be"):
        motion_penalty(colour, frame, colour(frame), move, bend=bend[:, :64])
    with pytest.raises(ValueError, match=">= 0 px"):
        smooth_bend(1, 8, 8, -1.0, torch.Generator())


def test_the_feature_motion_penalty_passes_features_carried_with_the_content_and_fails_a_fixed_pattern() -> None:
    from training.losses import camera_grid, feature_motion_penalty

    torch.manual_seed(0)
    frame = torch.nn.functional.interpolate(torch.rand(2, 3, 16, 20), size=(128, 160), mode="bicubic")
    move = (8.0, -16.0, 0.0, 1.0)  # whole cells of an 8x-coarser feature grid: carried exactly
    grid = camera_grid(frame, move)
    moved = torch.nn.functional.grid_sample(frame, grid, padding_mode="reflection", align_corners=False)

    def encode(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(x, 8)

    assert float(feature_motion_penalty(encode(moved), encode(frame), grid)) < 1e-8
    checker = torch.zeros(1, 1, 16, 20)
    checker[..., ::2, ::2] = checker[..., 1::2, 1::2] = 1.0

    def fixed(x: torch.Tensor) -> torch.Tensor:
        return encode(x) + checker

    assert float(feature_motion_penalty(fixed(moved), fixed(frame), grid)) > 0.1  # relative to the features' power
    scaled = feature_motion_penalty(10 * fixed(moved), 10 * fixed(frame), grid)
    assert float(scaled) == pytest.approx(float(feature_motion_penalty(fixed(moved), fixed(frame), grid)), rel=1e-4)
    with pytest.raises(ValueError, match="features of the moved frame"):
        feature_motion_penalty(encode(moved)[:, :2], encode(frame), grid)
