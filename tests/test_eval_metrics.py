"""eval.metrics / eval.niqe: PSNR, SSIM, Y conversion, colour drift, NIQE."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.special import gamma as gamma_fn

from streamvsr.eval import metrics as M
from streamvsr.eval import niqe as N


def _textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture, uint8."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(h, w, 3))
    tex = ndimage.gaussian_filter(noise, sigma=(2, 2, 0))
    tex = (tex - tex.min()) / (tex.max() - tex.min())
    return np.round(20 + 215 * tex).astype(np.uint8)


def test_rgb_to_y_range_and_grey_level():
    black, white = np.zeros((1, 1, 3)), np.full((1, 1, 3), 255.0)
    assert M.rgb_to_y(black)[0, 0] == pytest.approx(16.0)
    assert M.rgb_to_y(white)[0, 0] == pytest.approx(235.0)
    grey = np.full((2, 2, 3), 100.0)
    assert M.rgb_to_y(grey, full_range=True)[0, 0] == pytest.approx(100.0)
    # pure red: 16 + 65.481
    assert M.rgb_to_y(np.array([[[255.0, 0, 0]]]))[0, 0] == pytest.approx(16 + 65.481)


def test_psnr_values_and_crop():
    a = np.full((10, 10), 100.0)
    b = a + 1
    assert M.psnr(a, b) == pytest.approx(20 * math.log10(255))
    assert M.psnr(a, a) == math.inf
    # a difference only in the border is cropped away
    c = a.copy()
    c[0, :] = 0
    assert M.psnr(a, c, crop=1) == math.inf
    assert M.psnr(a, c) < 30
    with pytest.raises(ValueError):
        M.psnr(a, a[:5])


@pytest.mark.parametrize("crop", [0, 4])
def test_ssim_matches_skimage(crop: int):
    from skimage.metrics import structural_similarity

    gt = _textured(48, 56, 1).astype(np.float64)
    rng = np.random.default_rng(3)
    sr = np.clip(gt + rng.normal(0, 12, gt.shape), 0, 255)
    kw = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": 255}
    c = slice(crop, -crop) if crop else slice(None)
    ref_y = structural_similarity(M.rgb_to_y(sr)[c, c], M.rgb_to_y(gt)[c, c], **kw)
    assert M.ssim_y(sr, gt, crop) == pytest.approx(ref_y, abs=1e-6)
    ref_rgb = structural_similarity(sr[c, c], gt[c, c], channel_axis=-1, **kw)
    assert M.ssim_rgb(sr, gt, crop) == pytest.approx(ref_rgb, abs=1e-6)
    assert M.ssim(gt, gt) == pytest.approx(1.0)


def test_color_drift():
    img = _textured(40, 48, 2).astype(np.float64)
    assert M.color_drift(img, img) == pytest.approx(0.0, abs=1e-6)
    # a uniform colour shift is reported in full
    shifted = img + np.array([6.0, 0.0, -3.0])
    assert M.color_drift(shifted, img) == pytest.approx(3.0, abs=1e-3)
    # zero-mean fine detail is mostly filtered out
    rng = np.random.default_rng(4)
    detail = img + rng.choice([-10.0, 10.0], size=img.shape)
    assert M.color_drift(detail, img) < 1.0


# ---- NIQE ----


def _aggd_plain(v: np.ndarray) -> tuple[float, float, float]:
    """The AGGD moment-matching fit of one vector, written out as in the published MATLAB code."""
    gam = [0.2 + 0.001 * k for k in range(9801)]
    r_gam = [gamma_fn(2 / g) ** 2 / (gamma_fn(1 / g) * gamma_fn(3 / g)) for g in gam]
    left = math.sqrt(np.mean(v[v < 0] ** 2))
    right = math.sqrt(np.mean(v[v > 0] ** 2))
    gh = left / right
    rhat = np.mean(np.abs(v)) ** 2 / np.mean(v**2)
    rn = rhat * (gh**3 + 1) * (gh + 1) / (gh**2 + 1) ** 2
    best = min(range(len(gam)), key=lambda i: (r_gam[i] - rn) ** 2)
    a = gam[best]
    k = math.sqrt(gamma_fn(1 / a) / gamma_fn(3 / a))
    return a, left * k, right * k


def test_aggd_fit_matches_plain_fit_and_knows_gaussians():
    rng = np.random.default_rng(5)
    v = np.stack([rng.laplace(size=4000), rng.normal(size=4000) * np.where(rng.random(4000) < 0.5, 1, 2)])
    alpha, bl, br = N.aggd_fit(v)
    for i in range(2):
        a, l_, r_ = _aggd_plain(v[i])
        assert alpha[i] == pytest.approx(a, abs=1e-9)
        assert bl[i] == pytest.approx(l_, rel=1e-9)
        assert br[i] == pytest.approx(r_, rel=1e-9)
    # a Gaussian has shape 2; a Laplacian shape 1
    g_alpha, _, _ = N.aggd_fit(rng.normal(size=(1, 200_000)))
    assert g_alpha[0] == pytest.approx(2.0, abs=0.05)
    assert alpha[0] == pytest.approx(1.0, abs=0.1)


def test_block_features_of_white_noise():
    rng = np.random.default_rng(6)
    blocks = rng.normal(size=(3, 48, 48))
    f = N.block_features(blocks)
    assert f.shape == (3, 18)
    # unit Gaussian: shape 2, scale sqrt(2) (sigma * sqrt(G(1/2) / G(3/2)))
    assert np.all(np.abs(f[:, 0] - 2) < 0.3)
    assert np.all(np.abs(f[:, 1] - math.sqrt(2)) < 0.1)
    # neighbour products of independent samples: symmetric (mean ~ 0, left ~ right scale)
    for k in range(4):
        alpha, mean, bl, br = f[:, 2 + 4 * k : 6 + 4 * k].T
        assert np.all(np.abs(mean) < 0.1)
        assert np.all(np.abs(bl / br - 1) < 0.2)


def _val_dir() -> Path:
    env = os.environ.get("STREAMVSR_DATA")
    base = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    return base / "val"


@pytest.mark.parametrize("name", ["lenna", "baboon", "monarch", "barbara"])
def test_niqe_blur_scores_worse_than_sharp(name: str):
    path = _val_dir() / "set14" / f"{name}.png"
    if not path.is_file():
        pytest.skip("shared Set14 images not present")
    from PIL import Image

    sharp = np.array(Image.open(path).convert("RGB"))
    blurred = np.round(ndimage.gaussian_filter(sharp.astype(np.float64), sigma=(2, 2, 0))).astype(np.uint8)
    s, b = N.niqe(sharp), N.niqe(blurred)
    assert math.isfinite(s) and math.isfinite(b)
    assert b > s + 1


def test_niqe_uses_matlab_half_scale_and_gray():
    img = _textured(100, 130, 9)
    gray = N.to_gray(img)
    assert gray.shape == (100, 130) and np.all(gray == np.round(gray))
    # features: one 96x96 block at each scale, 18 + 18 values
    assert N.niqe_features(gray).shape == (1, 36)
    # grey input == RGB input with equal channels
    assert N.niqe(gray) == pytest.approx(N.niqe(np.repeat(gray[..., None], 3, -1).astype(np.uint8)))
    with pytest.raises(ValueError):
        N.niqe(img[:90])


def test_pristine_params_are_a_model():
    mu, cov = N.pristine_params()
    assert mu.shape == (36,) and cov.shape == (36, 36)
    np.testing.assert_allclose(cov, cov.T, atol=1e-12)
    assert np.all(np.linalg.eigvalsh(cov) > -1e-9)


def test_mscn_window_is_matlab_fspecial():
    # fspecial('gaussian', 7, 7/6): the Gaussian evaluated at -3..3, normalised
    w = N._window()
    t = np.arange(-3, 4)
    g = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * (7 / 6) ** 2))
    np.testing.assert_allclose(w, g / g.sum(), atol=1e-15)
    # imresize_matlab is what NIQE's second scale uses
    from streamvsr.ops.resize import imresize_matlab

    x = np.random.default_rng(10).uniform(0, 255, (96, 96))
    half = imresize_matlab(torch.from_numpy(x), scale=0.5).numpy()
    assert half.shape == (48, 48)
