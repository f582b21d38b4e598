"""Colour correction of SR frames against the bicubic LR reference (FlashVSR spec §1.12).

Pure functions on ``(T, 3, H, W)`` tensors in [-1, 1] (any leading dims work: statistics are per channel
over the last two axes). Both clamp the result to [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["adain_color_fix", "adain_stats", "wavelet_blur", "wavelet_color_fix", "wavelet_decompose"]


def adain_stats(
    sr: torch.Tensor, ref: torch.Tensor, eps: float = 1e-5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The statistics of :func:`adain_color_fix` in sr's dtype, each (..., C, 1, 1): (mu_sr, sigma_sr, sigma_ref,
    mu_ref) with sigma = sqrt(biased variance over H x W + eps)."""
    if sr.shape != ref.shape:
        raise ValueError(f"sr {tuple(sr.shape)} and ref {tuple(ref.shape)} must have the same shape")
    ref = ref.to(sr.dtype)
    dims = (-2, -1)
    mu_s = sr.mean(dim=dims, keepdim=True)
    mu_r = ref.mean(dim=dims, keepdim=True)
    sd_s = (sr.var(dim=dims, keepdim=True, unbiased=False) + eps).sqrt()
    sd_r = (ref.var(dim=dims, keepdim=True, unbiased=False) + eps).sqrt()
    return mu_s, sd_s, sd_r, mu_r


def adain_color_fix(sr: torch.Tensor, ref: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """AdaIN per frame and channel: (sr - mu_sr) / sigma_sr * sigma_ref + mu_ref, clamped to [-1, 1].

    sigma = sqrt(biased variance over H x W + eps). Computed in the input dtype (the official code uses bf16), one
    rounding per operation in this order (``ops.frame_kernels`` repeats them in one kernel).
    """
    mu_s, sd_s, sd_r, mu_r = adain_stats(sr, ref, eps)
    return ((sr - mu_s) / sd_s * sd_r + mu_r).clamp(-1, 1)


def wavelet_blur(x: torch.Tensor, dilation: int) -> torch.Tensor:
    """3x3 binomial blur [1,2,1]^T[1,2,1]/16 at the given dilation, replicate padding; x (..., C, H, W)."""
    shape = x.shape
    x4 = x.reshape(-1, *shape[-3:])  # (N, C, H, W)
    c = x4.shape[1]
    k1 = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype, device=x.device) / 4
    kernel = (k1[:, None] * k1[None, :]).expand(c, 1, 3, 3)
    x4 = F.pad(x4, (dilation,) * 4, mode="replicate")
    return F.conv2d(x4, kernel, groups=c, dilation=dilation).reshape(shape)


def wavelet_decompose(x: torch.Tensor, levels: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (high, low): low = blur at dilations 1, 2, ..., 2^(levels-1); high = sum of the band details."""
    high = torch.zeros_like(x)
    low = x
    for i in range(levels):
        nxt = wavelet_blur(low, 2**i)
        high = high + (low - nxt)
        low = nxt
    return high, low


def wavelet_color_fix(sr: torch.Tensor, ref: torch.Tensor, levels: int = 5) -> torch.Tensor:
    """high(sr) + low(ref) with a ``levels``-level wavelet decomposition, clamped to [-1, 1]."""
    if sr.shape != ref.shape:
        raise ValueError(f"sr {tuple(sr.shape)} and ref {tuple(ref.shape)} must have the same shape")
    high, _ = wavelet_decompose(sr, levels)
    _, low = wavelet_decompose(ref.to(sr.dtype), levels)
    return (high + low).clamp(-1, 1)
