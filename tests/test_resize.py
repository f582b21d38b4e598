"""ops.resize: MATLAB imresize semantics, Lanczos, torch/Pillow bicubic."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from streamvsr.ops.resize import (
    bicubic_upsample,
    imresize_matlab,
    lanczos_resize,
    pillow_bicubic_uint8,
    resize_pillow_bicubic,
)


def _cubic(x: float) -> float:
    # Keys a = -0.5, written out as in MATLAB's imresize
    ax = abs(x)
    if ax <= 1:
        return 1.5 * ax**3 - 2.5 * ax**2 + 1
    if ax <= 2:
        return -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    return 0.0


def _resize_1d_loop(v: list[float], out_len: int, scale: float) -> list[float]:
    """Plain-loop MATLAB imresize along one axis (1-based indices, mirrored taps, normalised)."""
    n = len(v)
    width = 4.0
    aa = scale < 1
    if aa:
        width = width / scale
    out = []
    for x in range(1, out_len + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = math.ceil(width) + 2
        ws, vals = [], []
        for k in range(taps):
            j = left + k
            w = scale * _cubic(scale * (u - j)) if aa else _cubic(u - j)
            # mirror: the sequence 1..n, n..1 repeated
            m = (j - 1) % (2 * n)
            idx = m if m < n else 2 * n - 1 - m
            ws.append(w)
            vals.append(v[idx])
        s = sum(ws)
        out.append(sum(w / s * val for w, val in zip(ws, vals)))
    return out


def _resize_2d_loop(img: np.ndarray, out_hw: tuple[int, int], scales: tuple[float, float]) -> np.ndarray:
    rows = np.array([_resize_1d_loop(list(r), out_hw[1], scales[1]) for r in img])  # (H, out_w)
    return np.array([_resize_1d_loop(list(c), out_hw[0], scales[0]) for c in rows.T]).T  # (out_h, out_w)


def test_hand_derived_downscale_by_two():
    # imresize(1:8, 0.5): output 1 samples u = 1.5 with the kernel 0.5 * k(0.5 t) over taps j = -3..6.
    # k(0.25) = 0.8671875, k(0.75) = 0.2265625, k(1.25) = -0.0703125, k(1.75) = -0.0234375, k(2.25) = 0;
    # the taps j = 0, -1, -2 mirror to the values 1, 2, 3 and the weights sum to 2 * 0.5 * 2 = 2 before
    # normalisation, giving (-0.0703125 - 0.140625 + 0.2265625 + 0.8671875 + 1.734375 + 0.6796875
    # - 0.28125 - 0.1171875) / 2 = 1.44921875; the last output is its mirror image 9 - 1.44921875.
    x = torch.arange(1, 9, dtype=torch.float64).view(1, 1, 8)
    y = imresize_matlab(x, scale=0.5)
    assert y.shape == (1, 1, 4)
    assert y[0, 0, 0].item() == pytest.approx(1.44921875, abs=1e-12)
    assert y[0, 0, 3].item() == pytest.approx(9 - 1.44921875, abs=1e-12)
    # interior outputs are symmetric around 4.5 too
    assert (y[0, 0, 1] + y[0, 0, 2]).item() == pytest.approx(9.0, abs=1e-12)


@pytest.mark.parametrize("scale", [0.25, 0.5, 1 / 3, 0.7, 1.5, 2.0, 3.0, 4.0])
def test_matches_loop_reference(scale: float):
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, size=(13, 17))
    out_hw = (math.ceil(13 * scale), math.ceil(17 * scale))
    ref = _resize_2d_loop(img, out_hw, (scale, scale))
    got = imresize_matlab(torch.from_numpy(img)[None], scale=scale)[0].numpy()
    assert got.shape == out_hw
    np.testing.assert_allclose(got, ref, atol=1e-9)


def test_size_argument_uses_per_axis_scales():
    rng = np.random.default_rng(1)
    img = rng.uniform(0, 1, size=(12, 20))
    ref = _resize_2d_loop(img, (5, 31), (5 / 12, 31 / 20))
    got = imresize_matlab(torch.from_numpy(img), size=(5, 31)).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-9)


def test_batch_dims_and_dtype_are_kept():
    x = torch.rand(2, 3, 3, 16, 24, dtype=torch.float32)
    y = imresize_matlab(x, scale=0.25)
    assert y.shape == (2, 3, 3, 4, 6) and y.dtype == torch.float32
    # each image is resized independently
    torch.testing.assert_close(y[1, 2], imresize_matlab(x[1, 2], scale=0.25))
    h = imresize_matlab(x.half(), scale=0.5)
    assert h.dtype == torch.float16


@pytest.mark.parametrize("scale", [0.25, 1 / 3, 2.0, 4.0])
def test_constant_stays_constant(scale: float):
    x = torch.full((3, 19, 23), 0.37, dtype=torch.float64)
    torch.testing.assert_close(imresize_matlab(x, scale=scale), torch.full_like(imresize_matlab(x, scale=scale), 0.37))
    y = lanczos_resize(x, (int(19 * scale) + 1, int(23 * scale) + 2))
    torch.testing.assert_close(y, torch.full_like(y, 0.37))


@pytest.mark.parametrize("resize", ["cubic", "lanczos"])
def test_odd_upscale_interpolates_input_samples(resize: str):
    # x3: every 3rd output (offset 1) sits exactly on an input pixel centre, where both kernels are 1
    # at 0 and 0 at the other integers, so the input comes back unchanged (borders included).
    x = torch.rand(2, 7, 9, dtype=torch.float64)
    y = imresize_matlab(x, scale=3) if resize == "cubic" else lanczos_resize(x, (21, 27))
    torch.testing.assert_close(y[:, 1::3, 1::3], x)


def test_output_size_is_ceil_of_scale_times_size():
    y = imresize_matlab(torch.rand(1, 10, 11), scale=1 / 3)
    assert y.shape == (1, 4, 4)


def test_bad_arguments():
    x = torch.rand(1, 8, 8)
    with pytest.raises(ValueError):
        imresize_matlab(x)
    with pytest.raises(ValueError):
        imresize_matlab(x, scale=0.5, size=(4, 4))
    with pytest.raises(TypeError):
        imresize_matlab(torch.ones(1, 8, 8, dtype=torch.uint8), scale=0.5)


def test_lanczos_downscale_is_antialiased():
    # a pixel-level checkerboard has no content below Nyquist of the half-size grid: antialiasing
    # averages it to (nearly) flat grey instead of aliasing it into a pattern
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    board = ((yy + xx) % 2).double()
    y = lanczos_resize(board[None], (16, 16))[0]
    inner = y[3:-3, 3:-3]
    assert (inner - 0.5).abs().max() < 0.05


def test_bicubic_upsample_is_torch_interpolate():
    x = torch.rand(5, 3, 6, 7)
    torch.testing.assert_close(
        bicubic_upsample(x, 4), F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)
    )
    assert bicubic_upsample(x[0], 2).shape == (3, 12, 14)


def test_pillow_bicubic_matches_matlab_upscale_in_the_interior():
    # Pillow and MATLAB share the a = -0.5 kernel and pixel-centre alignment; they differ only at the
    # borders (clipping vs mirroring) and by Pillow's 8-bit rounding (and clipping) between its two
    # passes, kept out of play here by mid-range values.
    rng = np.random.default_rng(2)
    img = rng.integers(64, 192, size=(12, 16, 3), dtype=np.uint8)
    pil = resize_pillow_bicubic(img, (48, 64))
    assert pil.shape == (48, 64, 3) and pil.dtype == np.uint8
    ref = imresize_matlab(torch.from_numpy(img.astype(np.float64)).permute(2, 0, 1), scale=4).permute(1, 2, 0)
    ref = np.clip(np.round(ref.numpy()), 0, 255)
    diff = np.abs(pil.astype(np.float64) - ref)[8:-8, 8:-8]
    assert diff.max() <= 1


@pytest.mark.parametrize(
    ("hw", "out"),
    [((12, 16), (48, 64)), ((9, 13), (36, 52)), ((37, 50), (23, 31)), ((10, 14), (10, 33)), ((17, 19), (50, 11))],
)
def test_pillow_bicubic_uint8_is_bit_exact(hw: tuple[int, int], out: tuple[int, int]) -> None:
    """The tensor version equals Pillow byte for byte: x4 up, odd sizes, down (antialiased), one axis only,
    and full-range noise (overshoot clamped at 0 and 255 in both passes)."""
    rng = np.random.default_rng(sum(hw) + sum(out))
    imgs = rng.integers(0, 256, size=(2, *hw, 3), dtype=np.uint8)
    got = pillow_bicubic_uint8(torch.from_numpy(imgs).permute(0, 3, 1, 2), out)  # (2, 3, h, w)
    assert got.dtype == torch.uint8 and got.shape == (2, 3, *out)
    for img, g in zip(imgs, got):
        np.testing.assert_array_equal(g.permute(1, 2, 0).numpy(), resize_pillow_bicubic(img, out))
