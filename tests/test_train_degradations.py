"""Tests for streamvsr.train.degradations (BI, BD, real-world pipeline, dispatcher)."""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.ndimage import gaussian_filter

from streamvsr.errors import DataError
from streamvsr.train import degradations as D

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def smooth_clip(t: int = 8, h: int = 64, w: int = 64, seed: int = 0, detail: int = 8) -> torch.Tensor:
    """A textured, moving test clip (T, 3, H, W) on 8-bit levels (texture period ~``detail`` px)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, h // detail, w // detail, generator=g)
    big = F.interpolate(base, size=(h + 2 * t, w + 2 * t), mode="bicubic", align_corners=False)
    frames = [big[0, :, k : k + h, 2 * k : 2 * k + w] for k in range(t)]
    return D.quantise(torch.stack(frames))


def on_levels(x: torch.Tensor) -> bool:
    return bool(torch.all((x * 255 - (x * 255).round()).abs() < 1e-4))


# ---------------------------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("kind", ["gauss", "aniso", "generalized", "plateau", "sinc", "bd"])
def test_kernels_sum_to_one_and_are_point_symmetric(kind: str) -> None:
    k = {
        "gauss": lambda: D.gaussian_kernel(11, 1.3),
        "aniso": lambda: D.gaussian_kernel(15, 2.5, 0.7, 0.6),
        "generalized": lambda: D.generalized_gaussian_kernel(13, 1.5, 2.2, -1.1, 0.7),
        "plateau": lambda: D.plateau_kernel(9, 1.2, 0.8, 0.3, 1.5),
        "sinc": lambda: D.sinc_kernel(21, math.pi / 3),
        "bd": lambda: D.bd_kernel(),
    }[kind]()
    assert k.dtype == np.float32 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
    assert abs(float(k.sum()) - 1.0) < 1e-5
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-7)


def test_bd_kernel_matches_scipy_gaussian_filter_of_a_delta() -> None:
    delta = np.zeros((13, 13))
    delta[6, 6] = 1.0
    ref = gaussian_filter(delta, 1.6)  # radius int(4 * 1.6 + 0.5) = 6 -> 13 taps, as in DUF
    k = D.bd_kernel(13, 1.6)
    assert abs(float(k.sum()) - 1.0) < 1e-6
    np.testing.assert_allclose(k, ref / ref.sum(), atol=1e-7)


def test_anisotropic_kernel_is_rotated_not_axis_aligned() -> None:
    k0 = D.gaussian_kernel(21, 3.0, 0.5, 0.0)
    k90 = D.gaussian_kernel(21, 3.0, 0.5, math.pi / 2)
    np.testing.assert_allclose(k90, k0.T, atol=1e-7)
    assert np.abs(k0 - k0.T).max() > 1e-3


def test_sinc_kernel_is_a_lowpass_with_the_given_cutoff() -> None:
    k = D.sinc_kernel(21, math.pi / 2).astype(np.float64)
    resp = np.abs(np.fft.fftshift(np.fft.fft2(k, s=(128, 128))))
    freqs = np.fft.fftshift(np.fft.fftfreq(128)) * 2 * math.pi  # rad / pixel
    fy, fx = np.meshgrid(freqs, freqs, indexing="ij")
    r = np.hypot(fx, fy)
    assert abs(resp[64, 64] - 1.0) < 1e-6
    assert resp[r < 0.3 * math.pi].min() > 0.8
    assert resp[r > 0.75 * math.pi].max() < 0.25


def test_separable_filter_matches_direct_2d_filter() -> None:
    rng = np.random.default_rng(3)
    clip = rng.random((2, 40, 36, 3), dtype=np.float32)
    import cv2

    for k in (D.gaussian_kernel(21, 2.0), D.gaussian_kernel(17, 2.5, 0.8, 0.5), D.sinc_kernel(9, 2.0)):
        out = D.filter_clip(clip, k)
        ref = np.stack([cv2.filter2D(f, -1, k, borderType=cv2.BORDER_REFLECT_101) for f in clip])
        assert np.abs(out - ref).max() < 1e-3


def test_sampled_kernels_cover_types_and_sizes() -> None:
    rng = np.random.default_rng(0)
    cfg = D.BlurConfig()
    sizes = set()
    for _ in range(200):
        k = D.sample_blur_kernel(rng, cfg)
        sizes.add(k.shape[0])
        assert abs(float(k.sum()) - 1.0) < 1e-4 and np.isfinite(k).all()
    assert sizes == set(cfg.kernel_sizes)


# ---------------------------------------------------------------------------------------------- BI / BD


def test_bi_is_imresize_matlab_plus_rounding() -> None:
    from streamvsr.ops.resize import imresize_matlab

    x = smooth_clip(3, 64, 48)
    y = D.bi(x, 4)
    assert y.shape == (3, 3, 16, 12)
    assert on_levels(y) and float(y.min()) >= 0 and float(y.max()) <= 1
    ref = (imresize_matlab(x, 0.25).clamp(0, 1) * 255).round() / 255
    assert torch.equal(y, ref)


def test_bi_interior_agrees_with_pillow_bicubic() -> None:
    # Independent oracle: Pillow's antialiased bicubic (a = -0.5) equals MATLAB's away from borders.
    x = smooth_clip(1, 96, 96, seed=4)
    y = D.bi(x, 4)[0]
    img = (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    pil = np.asarray(Image.fromarray(img).resize((24, 24), Image.Resampling.BICUBIC)).astype(np.float64)
    ours = y.permute(1, 2, 0).numpy() * 255
    diff = np.abs(ours[2:-2, 2:-2] - pil[2:-2, 2:-2])
    assert diff.max() <= 2.0 and diff.mean() < 0.5  # Pillow rounds its 8-bit intermediate pass


def test_bd_matches_torch_conv_reference_and_offset_zero() -> None:
    x = smooth_clip(2, 32, 40, seed=1)
    y = D.bd(x, 4)
    k = torch.from_numpy(D.bd_kernel().astype(np.float64))
    xp = F.pad(x.double().reshape(-1, 1, 32, 40), (6, 6, 6, 6), mode="reflect")
    ref = F.conv2d(xp, k[None, None]).reshape(2, 3, 32, 40)[..., ::4, ::4]
    ref = (ref.clamp(0, 1) * 255).round() / 255
    assert y.shape == (2, 3, 8, 10)
    assert (y.double() - ref).abs().max() <= 1 / 255 + 1e-9  # float32 vs float64 rounding ties
    # A single bright pixel at HR (4*3, 4*5) lands on LR (3, 5): sampling starts at offset 0.
    d = torch.zeros(1, 3, 32, 40)
    d[..., 12, 20] = 1.0
    yd = D.bd(d, 4)[0, 0]
    assert divmod(int(torch.argmax(yd)), yd.shape[1]) == (3, 5)


def test_bi_bd_reject_sizes_not_divisible_by_scale() -> None:
    with pytest.raises(DataError):
        D.bd(torch.rand(1, 3, 30, 32), 4)
    with pytest.raises(DataError):
        D.bi(torch.rand(1, 3, 32, 33), 4)


# ---------------------------------------------------------------------------------------------- real


def test_real_is_deterministic_per_seed_and_fast() -> None:
    x = smooth_clip(8, 64, 64)
    t0 = time.perf_counter()
    a = D.real_degrade(x, 123)
    elapsed = time.perf_counter() - t0
    b = D.real_degrade(x, 123)
    c = D.real_degrade(x, 124)
    assert a.shape == (8, 3, 16, 16) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert float(a.min()) >= 0 and float(a.max()) <= 1 and on_levels(a)
    assert elapsed < 2.0


def test_real_many_seeds_reproducible_including_codecs() -> None:
    x = smooth_clip(6, 64, 64, seed=2)
    for seed in range(12):
        assert torch.equal(D.real_degrade(x, seed), D.real_degrade(x, seed)), seed


def _only(stage: D.StageConfig, **kw) -> D.StageConfig:
    return dataclasses.replace(stage, **kw)


def test_real_uses_one_kernel_per_clip_and_fresh_noise_per_frame() -> None:
    static = smooth_clip(1, 64, 64).repeat(5, 1, 1, 1)
    no_noise = D.NoiseConfig(prob=0.0)
    keep = D.ResizeConfig(mode_probs=(0, 0, 1))
    quiet = D.StageConfig(blur=D.BlurConfig(prob=0.0), resize=keep, noise=no_noise, jpeg_prob=0.0)
    blur_only = D.RealDegradationConfig(
        stage1=_only(quiet, blur=D.BlurConfig(prob=1.0)),
        stage2=quiet,
        final_jpeg_prob=0.0,
        video=D.VideoCodecConfig(prob=0.0),
    )
    out = D.real_degrade(static, 7, 4, blur_only)
    assert all(torch.equal(out[0], out[t]) for t in range(1, 5))  # same kernel/resize for every frame
    noise_only = dataclasses.replace(
        blur_only,
        stage1=_only(quiet, noise=D.NoiseConfig(gaussian_prob=1.0, gaussian_sigma_range=(20, 20), gray_prob=0.0)),
        final_sinc_prob=0.0,
    )
    out = D.real_degrade(static, 7, 4, noise_only)
    clean = D.real_degrade(static, 7, 4, dataclasses.replace(noise_only, stage1=quiet))
    resid = out - clean
    assert not torch.equal(out[0], out[1])  # fresh realisation per frame
    stds = resid.flatten(1).std(dim=1)
    assert float(stds.max() / stds.min()) < 1.3  # same noise level on every frame


def test_real_handles_odd_lr_sizes_and_single_frames() -> None:
    x = smooth_clip(1, 36, 44)  # LR 9 x 11: odd, codec pads to even internally
    y = D.real_degrade(x, 5)
    assert y.shape == (1, 3, 9, 11)


def test_video_codec_roundtrip_each_default_codec() -> None:
    clip = (smooth_clip(6, 32, 48).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    for codec in D.VideoCodecConfig().codecs:
        kw = {"crf": 20} if D.VIDEO_CODECS[codec][1] == "crf" else {"bitrate": 400_000}
        a = D.video_codec_clip(clip, codec, **kw)
        assert a.shape == clip.shape and a.dtype == np.uint8
        assert np.array_equal(a, D.video_codec_clip(clip, codec, **kw))
        mse = np.mean((a.astype(np.float64) - clip) ** 2)
        assert mse > 0 and 10 * np.log10(255**2 / mse) > 22, codec


def test_harder_codec_settings_lose_more() -> None:
    clip = (smooth_clip(8, 64, 64, seed=9, detail=2).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)

    def mse(out: np.ndarray) -> float:
        return float(np.mean((out.astype(np.float64) - clip) ** 2))

    assert mse(D.video_codec_clip(clip, "libx264", crf=40)) > mse(D.video_codec_clip(clip, "libx264", crf=18))
    assert mse(D.video_codec_clip(clip, "mpeg4", bitrate=20_000)) > mse(
        D.video_codec_clip(clip, "mpeg4", bitrate=2_000_000)
    )


def test_config_validation() -> None:
    with pytest.raises(DataError):
        D.VideoCodecConfig(codecs=("nosuchcodec",), codec_probs=(1.0,))
    with pytest.raises(DataError):
        D.BlurConfig(kernel_sizes=(8,))
    with pytest.raises(DataError):
        D.StageConfig(jpeg_range=(50, 30))


# ---------------------------------------------------------------------------------------------- dispatcher


def test_degrade_dispatch_and_mix() -> None:
    x = smooth_clip(2, 32, 32)
    assert torch.equal(D.degrade(x, "bi", 1, 4), D.bi(x, 4))
    assert torch.equal(D.degrade(x, "bd", 1, 4), D.bd(x, 4))
    assert torch.equal(D.degrade(x, "real", 9, 4), D.real_degrade(x, 9, 4))
    assert torch.equal(D.degrade(x, {"bd": 1.0}, 3, 4), D.bd(x, 4))
    bi, bd = D.bi(x, 4), D.bd(x, 4)
    kinds = []
    for seed in range(40):
        y = D.degrade(x, "mix", seed, 4)
        assert torch.equal(y, D.degrade(x, "mix", seed, 4))
        kinds.append("bi" if torch.equal(y, bi) else "bd" if torch.equal(y, bd) else "real")
    assert set(kinds) == {"bi", "bd", "real"}
    assert kinds.count("real") > kinds.count("bi")  # DEFAULT_MIX favours real (0.6 vs 0.2)
    with pytest.raises(DataError):
        D.degrade(x, "nope", 0, 4)
    with pytest.raises(DataError):
        D.degrade(x, {"jpeg": 1.0}, 0, 4)


def test_mix_string_form() -> None:
    assert D.parse_mix("bi") == "bi"
    assert D.parse_mix("bi:0.5, real:0.5") == {"bi": 0.5, "real": 0.5}
    x = smooth_clip(2, 32, 32)
    for seed in range(6):
        assert torch.equal(D.degrade(x, "bi:0.5,bd:0.5", seed, 4), D.degrade(x, {"bi": 0.5, "bd": 0.5}, seed, 4))
    assert torch.equal(D.degrade(x, "bd:1", 3, 4), D.bd(x, 4))
    with pytest.raises(DataError):
        D.parse_mix("bi:lots")
    with pytest.raises(DataError):
        D.degrade(x, "bi:0.5,jpeg:0.5", 0, 4)
