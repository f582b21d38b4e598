"""Full-reference and fidelity metrics (pure functions on numpy arrays).

Conventions (the usual SR ones, as in BasicSR and the MATLAB scripts of the literature):

* Images are ``(H, W, 3)`` RGB arrays on the 0..255 scale (uint8, or floats already quantised).
* Y channel: BT.601 as MATLAB ``rgb2ycbcr``: ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` with RGB
  in [0, 1], so Y is in 16..235 (kept as float, not rounded).
* Single-channel (grey) source images, e.g. Set14's ``bridge``: the Y channel is the grey level
  itself, ``Y = 0.299 R + 0.587 G + 0.114 B`` on 0..255 (``full_range=True``), as the MATLAB
  scripts of the literature measure single-channel files directly (only the file's channel count
  decides: Set14's ``man`` is grey content stored as RGB and gets BT.601). This is what makes
  Set14's classic bicubic x4 number (26.00 dB) come out; BT.601 studio range for ``bridge`` too
  would give 26.09.
* ``crop`` pixels are removed from every border before measuring (SR convention: crop = scale).
* PSNR: ``10 log10(255^2 / MSE)``; identical images give ``inf``.
* SSIM: Wang et al. 2004, 11x11 Gaussian window (sigma 1.5), C1 = (0.01 * 255)^2,
  C2 = (0.03 * 255)^2, 'valid' filtering (no padding), mean of the SSIM map; RGB SSIM is the mean
  over channels. Matches ``skimage.metrics.structural_similarity(..., gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=255)``.
* Colour drift: mean absolute difference (RGB, 0..255) between the Gaussian low-pass (sigma =
  ``2 * scale`` output pixels) of the SR frame and of the bicubic (MATLAB) upscaled input.

No-reference and temporal metrics live in :mod:`streamvsr.eval.niqe` and
:mod:`streamvsr.eval.temporal` and are re-exported here.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from streamvsr.eval.niqe import niqe
from streamvsr.eval.temporal import tof, warp_error

__all__ = [
    "color_drift",
    "crop_border",
    "gaussian_window",
    "niqe",
    "psnr",
    "psnr_rgb",
    "psnr_y",
    "rgb_to_y",
    "ssim",
    "ssim_rgb",
    "ssim_y",
    "tof",
    "warp_error",
]

_SSIM_C1 = (0.01 * 255) ** 2
_SSIM_C2 = (0.03 * 255) ** 2


def rgb_to_y(img: np.ndarray, full_range: bool = False) -> np.ndarray:
    """BT.601 luma as MATLAB ``rgb2ycbcr``: ``(H, W, 3)`` RGB 0..255 -> ``(H, W)`` float64 in 16..235.

    ``full_range``: ``0.299 R + 0.587 G + 0.114 B`` on 0..255 instead (the grey level of grey images).
    """
    rgb = np.asarray(img, dtype=np.float64)
    if full_range:
        return rgb @ np.array([0.299, 0.587, 0.114])
    return 16.0 + (rgb / 255.0) @ np.array([65.481, 128.553, 24.966])


def crop_border(img: np.ndarray, crop: int) -> np.ndarray:
    """Remove ``crop`` pixels from each border of an ``(H, W, ...)`` array."""
    if crop <= 0:
        return img
    return img[crop:-crop, crop:-crop, ...]


def psnr(a: np.ndarray, b: np.ndarray, crop: int = 0, data_range: float = 255.0) -> float:
    """PSNR in dB between two arrays of equal shape (any channels), after cropping ``crop`` pixels."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    diff = crop_border(np.asarray(a, np.float64), crop) - crop_border(np.asarray(b, np.float64), crop)
    mse = float(np.mean(diff * diff))
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 1-D Gaussian of ``size`` taps (float64)."""
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(t * t) / (2 * sigma * sigma))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    # separable correlation, then keep only the 'valid' part (no border effects)
    r = len(g) // 2
    out = ndimage.correlate1d(img, g, axis=0, mode="reflect")
    out = ndimage.correlate1d(out, g, axis=1, mode="reflect")
    return out[r:-r, r:-r]


def _ssim_2d(a: np.ndarray, b: np.ndarray) -> float:
    g = gaussian_window(11, 1.5)
    if min(a.shape) < len(g):
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {a.shape}")
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    var_a = _filter_valid(a * a, g) - mu_a * mu_a
    var_b = _filter_valid(b * b, g) - mu_b * mu_b
    cov = _filter_valid(a * b, g) - mu_a * mu_b
    num = (2 * mu_a * mu_b + _SSIM_C1) * (2 * cov + _SSIM_C2)
    den = (mu_a * mu_a + mu_b * mu_b + _SSIM_C1) * (var_a + var_b + _SSIM_C2)
    return float(np.mean(num / den))


def ssim(a: np.ndarray, b: np.ndarray, crop: int = 0) -> float:
    """SSIM on the 0..255 scale of ``(H, W)`` or ``(H, W, C)`` arrays (mean over channels)."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    a = crop_border(np.asarray(a, np.float64), crop)
    b = crop_border(np.asarray(b, np.float64), crop)
    if a.ndim == 2:
        return _ssim_2d(a, b)
    return float(np.mean([_ssim_2d(a[..., c], b[..., c]) for c in range(a.shape[-1])]))


def psnr_y(sr: np.ndarray, gt: np.ndarray, crop: int = 0, full_range: bool = False) -> float:
    """PSNR on the BT.601 Y channel of two RGB images (0..255); see :func:`rgb_to_y`."""
    return psnr(rgb_to_y(sr, full_range), rgb_to_y(gt, full_range), crop)


def psnr_rgb(sr: np.ndarray, gt: np.ndarray, crop: int = 0) -> float:
    """PSNR over all RGB values (0..255)."""
    return psnr(sr, gt, crop)


def ssim_y(sr: np.ndarray, gt: np.ndarray, crop: int = 0, full_range: bool = False) -> float:
    """SSIM on the BT.601 Y channel of two RGB images (0..255); see :func:`rgb_to_y`."""
    return ssim(rgb_to_y(sr, full_range), rgb_to_y(gt, full_range), crop)


def ssim_rgb(sr: np.ndarray, gt: np.ndarray, crop: int = 0) -> float:
    """SSIM averaged over the R, G and B channels (0..255)."""
    return ssim(sr, gt, crop)


def color_drift(sr: np.ndarray, upscaled_input: np.ndarray, scale: int = 4) -> float:
    """Mean |lowpass(SR) - lowpass(upscaled input)| over RGB, 0..255 scale.

    The low-pass is a Gaussian with sigma = ``2 * scale`` output pixels (mirrored borders), which
    keeps only what the input itself can say about colour: detail the model adds is removed, a
    colour or brightness shift is not.
    """
    if sr.shape != upscaled_input.shape:
        raise ValueError(f"shape mismatch: {sr.shape} vs {upscaled_input.shape}")
    sigma = 2.0 * scale
    diff = np.asarray(sr, np.float32) - np.asarray(upscaled_input, np.float32)
    # the low-pass is linear: filter the difference once
    low = ndimage.gaussian_filter(diff, sigma=(sigma, sigma, 0), mode="reflect", truncate=3.0)
    return float(np.mean(np.abs(low)))
