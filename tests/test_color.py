"""Colour correction: AdaIN and wavelet fixes on constructed inputs."""

from __future__ import annotations

import pytest
import torch

from streamvsr.ops.color import adain_color_fix, wavelet_blur, wavelet_color_fix, wavelet_decompose


def _frames(seed: int, t: int = 3, h: int = 20, w: int = 24, scale: float = 0.4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(t, 3, h, w, generator=g, dtype=torch.float64) * 2 - 1) * scale


def test_adain_transfers_per_frame_channel_statistics() -> None:
    sr = _frames(0)
    ref = _frames(1) * 0.5 + torch.tensor([0.2, -0.1, 0.05], dtype=torch.float64).view(1, 3, 1, 1)
    out = adain_color_fix(sr, ref, eps=0.0)
    torch.testing.assert_close(out.mean(dim=(-2, -1)), ref.mean(dim=(-2, -1)))
    torch.testing.assert_close(out.std(dim=(-2, -1)), ref.std(dim=(-2, -1)))
    # The spatial pattern is the SR one: out is an affine map of sr per frame and channel.
    z_out = (out - out.mean(dim=(-2, -1), keepdim=True)) / out.std(dim=(-2, -1), keepdim=True)
    z_sr = (sr - sr.mean(dim=(-2, -1), keepdim=True)) / sr.std(dim=(-2, -1), keepdim=True)
    torch.testing.assert_close(z_out, z_sr)


def test_adain_formula_eps_and_clamp() -> None:
    sr = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]], dtype=torch.float64)  # mean .5, biased var .25
    ref = torch.tensor([[[[0.0, 4.0], [0.0, 4.0]]]], dtype=torch.float64)  # mean 2, biased var 4
    eps = 1e-5
    expect_hi = (1 - 0.5) / (0.25 + eps) ** 0.5 * (4 + eps) ** 0.5 + 2
    out = adain_color_fix(sr, ref, eps=eps)
    assert expect_hi > 1 and out.max() == 1.0  # clamped
    ref2 = ref / 8  # mean .25, var 1/16
    out2 = adain_color_fix(sr, ref2, eps=eps)
    hi = (1 - 0.5) / (0.25 + eps) ** 0.5 * (1 / 16 + eps) ** 0.5 + 0.25
    lo = (0 - 0.5) / (0.25 + eps) ** 0.5 * (1 / 16 + eps) ** 0.5 + 0.25
    torch.testing.assert_close(out2, torch.tensor([[[[lo, hi], [lo, hi]]]], dtype=torch.float64))
    with pytest.raises(ValueError):
        adain_color_fix(sr, ref[..., :1])


def test_adain_frames_are_independent() -> None:
    sr, ref = _frames(2), _frames(3)
    full = adain_color_fix(sr, ref)
    parts = torch.cat([adain_color_fix(sr[i : i + 1], ref[i : i + 1]) for i in range(sr.shape[0])])
    torch.testing.assert_close(full, parts, rtol=0, atol=0)


def test_wavelet_blur_kernel_and_padding() -> None:
    x = torch.zeros(1, 1, 9, 9, dtype=torch.float64)
    x[0, 0, 4, 4] = 16.0
    y = wavelet_blur(x, 2)
    expect = torch.zeros(9, 9, dtype=torch.float64)
    for dy, a in ((-2, 1), (0, 2), (2, 1)):
        for dx, b in ((-2, 1), (0, 2), (2, 1)):
            expect[4 + dy, 4 + dx] = a * b
    torch.testing.assert_close(y[0, 0], expect)
    const = torch.full((2, 3, 7, 5), 0.3, dtype=torch.float64)
    torch.testing.assert_close(wavelet_blur(const, 4), const)  # replicate padding keeps constants


def test_wavelet_decomposition_sums_back() -> None:
    x = _frames(4)
    high, low = wavelet_decompose(x, 5)
    torch.testing.assert_close(high + low, x)
    expected_low = x
    for i in range(5):
        expected_low = wavelet_blur(expected_low, 2**i)
    torch.testing.assert_close(low, expected_low)


def test_wavelet_color_fix_swaps_low_frequencies() -> None:
    sr = _frames(5)
    offset = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64).view(1, 3, 1, 1)
    # A reference that only differs by a constant colour shift moves the SR by exactly that shift.
    out = wavelet_color_fix(sr, sr + offset)
    torch.testing.assert_close(out, (sr + offset).clamp(-1, 1))
    # ref == sr is the identity (up to the clamp).
    torch.testing.assert_close(wavelet_color_fix(sr, sr), sr)
    # Output = sr - low(sr) + low(ref).
    ref = _frames(6)
    _, low_sr = wavelet_decompose(sr)
    _, low_ref = wavelet_decompose(ref)
    torch.testing.assert_close(wavelet_color_fix(sr, ref), (sr - low_sr + low_ref).clamp(-1, 1))
    big = wavelet_color_fix(sr, sr + 5.0)
    assert big.max() == 1.0
