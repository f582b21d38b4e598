"""NIQE: Natural Image Quality Evaluator (Mittal, Soundararajan, Bovik, IEEE SPL 2013).

Written from the published algorithm (the authors' MATLAB ``computequality``):

1. The image is converted to grey (MATLAB ``rgb2gray`` weights, rounded as for uint8 input) and
   cropped to a multiple of the 96x96 block size.
2. At two scales (full, then MATLAB-bicubic half size), MSCN coefficients are computed with a 7x7
   Gaussian window (sigma 7/6, replicated borders): ``(I - mu) / (sigma + 1)``.
3. Per block (96x96, then 48x48), 18 features are fitted: the AGGD shape and mean scale of the MSCN
   coefficients, and for the 4 neighbour products (horizontal, vertical, two diagonals; circular
   shifts within the block) the AGGD shape, mean, left and right scales.
4. The 36-dimensional block features are summarised by their mean and covariance (blocks with any
   NaN dropped), and the score is the Mahalanobis-like distance to the pristine model:
   ``sqrt((mu_p - mu_d)^T pinv((S_p + S_d) / 2) (mu_p - mu_d))``. Lower is better.

The pristine model parameters (``data/niqe_pris_params.npz``) come from BasicSR; see data/README.md.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from scipy.special import gamma as gamma_fn

from streamvsr.ops.resize import imresize_matlab

BLOCK = 96
_PARAMS = Path(__file__).parent / "data" / "niqe_pris_params.npz"
_GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])  # MATLAB rgb2gray
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


@lru_cache(maxsize=1)
def pristine_params() -> tuple[np.ndarray, np.ndarray]:
    """``(mu (36,), cov (36, 36))`` of the pristine natural-image model."""
    with np.load(_PARAMS) as d:
        return d["mu_pris_param"].reshape(-1).astype(np.float64), d["cov_pris_param"].astype(np.float64)


@lru_cache(maxsize=1)
def _gamma_table() -> tuple[np.ndarray, np.ndarray]:
    gam = 0.2 + 0.001 * np.arange(9801)  # 0.2:0.001:10 as in MATLAB
    r_gam = gamma_fn(2 / gam) ** 2 / (gamma_fn(1 / gam) * gamma_fn(3 / gam))
    return gam, r_gam


def _window() -> np.ndarray:
    t = np.arange(7, dtype=np.float64) - 3
    g = np.exp(-(t * t) / (2 * (7 / 6) ** 2))
    w = np.outer(g, g)
    return w / w.sum()


def aggd_fit(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit an asymmetric generalised Gaussian to each row of ``v (N, M)``: (alpha, beta_l, beta_r)."""
    gam, r_gam = _gamma_table()
    neg, pos = v < 0, v > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        left = np.sqrt((v * v * neg).sum(1) / neg.sum(1))  # NaN when a side is empty (as MATLAB)
        right = np.sqrt((v * v * pos).sum(1) / pos.sum(1))
        g = left / right
        rhat = np.mean(np.abs(v), 1) ** 2 / np.mean(v * v, 1)
        rnorm = rhat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    err = (r_gam[None, :] - rnorm[:, None]) ** 2  # (N, G)
    alpha = gam[np.argmin(np.where(np.isnan(err), np.inf, err), axis=1)]
    k = np.sqrt(gamma_fn(1 / alpha) / gamma_fn(3 / alpha))
    return alpha, left * k, right * k


def block_features(blocks: np.ndarray) -> np.ndarray:
    """The 18 NIQE features of each MSCN block: ``(N, b, b) -> (N, 18)``."""
    n = blocks.shape[0]
    alpha, bl, br = aggd_fit(blocks.reshape(n, -1))
    feats = [alpha, (bl + br) / 2]
    for shift in _SHIFTS:
        pair = blocks * np.roll(blocks, shift, axis=(1, 2))  # circshift within each block
        alpha, bl, br = aggd_fit(pair.reshape(n, -1))
        mean = (br - bl) * gamma_fn(2 / alpha) / gamma_fn(1 / alpha)
        feats += [alpha, mean, bl, br]
    return np.stack(feats, axis=1)


def _mscn(im: np.ndarray) -> np.ndarray:
    w = _window()
    mu = ndimage.correlate(im, w, mode="nearest")  # imfilter(..., 'replicate')
    sigma = np.sqrt(np.abs(ndimage.correlate(im * im, w, mode="nearest") - mu * mu))
    return (im - mu) / (sigma + 1)


def _to_blocks(x: np.ndarray, b: int) -> np.ndarray:
    nh, nw = x.shape[0] // b, x.shape[1] // b
    # column-major block order (as MATLAB blkproc + reshape); only the pairing across scales matters
    return x.reshape(nh, b, nw, b).transpose(2, 0, 1, 3).reshape(nh * nw, b, b)


def niqe_features(gray: np.ndarray) -> np.ndarray:
    """``(N_blocks, 36)`` NIQE features of a grey image (0..255, float), cropped to whole blocks."""
    h, w = (gray.shape[0] // BLOCK) * BLOCK, (gray.shape[1] // BLOCK) * BLOCK
    if h == 0 or w == 0:
        raise ValueError(f"NIQE needs an image of at least {BLOCK}x{BLOCK} pixels, got {gray.shape}")
    im = np.asarray(gray[:h, :w], dtype=np.float64)
    feats = []
    for scale in (1, 2):
        feats.append(block_features(_to_blocks(_mscn(im), BLOCK // scale)))
        if scale == 1:
            im = imresize_matlab(torch.from_numpy(im), scale=0.5).numpy()
    return np.concatenate(feats, axis=1)


def to_gray(img: np.ndarray) -> np.ndarray:
    """RGB ``(H, W, 3)`` 0..255 -> grey as MATLAB ``rgb2gray`` on uint8 (rounded), float64."""
    img = np.asarray(img)
    if img.ndim == 2:
        return img.astype(np.float64)
    return np.round(img.astype(np.float64) @ _GRAY)


def niqe(img: np.ndarray, crop: int = 0) -> float:
    """NIQE score of an RGB ``(H, W, 3)`` or grey ``(H, W)`` image on the 0..255 scale (lower = better)."""
    gray = to_gray(img)
    if crop > 0:
        gray = gray[crop:-crop, crop:-crop]
    feat = niqe_features(gray)
    feat = feat[~np.isnan(feat).any(axis=1)]
    if feat.shape[0] == 0:
        return float("nan")
    mu_p, cov_p = pristine_params()
    mu_d = feat.mean(axis=0)
    cov_d = np.cov(feat, rowvar=False) if feat.shape[0] > 1 else np.zeros_like(cov_p)
    d = mu_p - mu_d
    return float(np.sqrt(d @ np.linalg.pinv((cov_p + cov_d) / 2) @ d))
