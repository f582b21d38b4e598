"""Image resizing with well-defined kernels (pure functions).

* :func:`imresize_matlab`: MATLAB ``imresize(x, ..., 'bicubic')``; the SR evaluation convention
  (LQ synthesis for BI and the bicubic baseline of the literature).
* :func:`lanczos_resize`: separable Lanczos (a = 3 by default), antialiased when downscaling.
* :func:`bicubic_upsample`: torch's bicubic (a = -0.75, align_corners=False), the fast path.
* :func:`resize_pillow_bicubic`: Pillow's BICUBIC on uint8 images (FlashVSR's official LQ upsampling).
* :func:`pillow_bicubic_uint8`: the same, bit for bit, as integer tensor math on any device (no CPU trip).

Sizes are ``(height, width)`` everywhere. Tensors are ``(..., C, H, W)`` floats; nothing is
rounded or clamped inside: the caller quantises.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

Kernel = Callable[[np.ndarray], np.ndarray]


def cubic_kernel(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel (support [-2, 2]); ``a = -0.5`` is MATLAB's and Pillow's."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = ((a + 2) * ax3 - (a + 3) * ax2 + 1) * (ax <= 1)
    far = (a * ax3 - 5 * a * ax2 + 8 * a * ax - 4 * a) * ((ax > 1) & (ax <= 2))
    return near + far


def lanczos_kernel(x: np.ndarray, a: int = 3) -> np.ndarray:
    """Lanczos window ``sinc(x) sinc(x / a)`` on (-a, a) (np.sinc is the normalised sinc)."""
    return np.where(np.abs(x) < a, np.sinc(x) * np.sinc(x / a), 0.0)


def resize_weights(
    in_len: int, out_len: int, scale: float, kernel: Kernel, width: float, antialias: bool = True
) -> np.ndarray:
    """The ``(out_len, in_len)`` float64 matrix that resizes one axis, as MATLAB's ``contributions``.

    Output pixel ``x`` (1-based) samples the input at ``u = x / scale + (1 - 1 / scale) / 2``. When
    downscaling with ``antialias`` the kernel is stretched by ``1 / scale`` (and scaled by ``scale``).
    Taps that fall outside the axis are mirrored (``1..n, n..1`` repeated, i.e. half-sample symmetric),
    and each row is normalised to sum 1.
    """
    if antialias and scale < 1:
        h: Kernel = lambda t: scale * kernel(scale * t)  # noqa: E731
        width = width / scale
    else:
        h = kernel
    x = np.arange(1, out_len + 1, dtype=np.float64)[:, None]  # (out, 1)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left + np.arange(taps, dtype=np.float64)[None, :]  # (out, taps), 1-based
    w = h(u - idx)
    w = w / w.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])  # 0-based
    idx0 = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    mat = np.zeros((out_len, in_len), dtype=np.float64)
    np.add.at(mat, (np.repeat(np.arange(out_len), taps), idx0.ravel()), w.ravel())
    return mat


def _out_sizes(
    hw: tuple[int, int], scale: float | None, size: tuple[int, int] | None
) -> tuple[tuple[int, int], tuple[float, float]]:
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale or size")
    if size is not None:
        out = (int(size[0]), int(size[1]))
        if min(out) < 1:
            raise ValueError(f"size must be positive, got {size}")
        return out, (out[0] / hw[0], out[1] / hw[1])
    if scale <= 0:  # type: ignore[operator]
        raise ValueError(f"scale must be positive, got {scale}")
    # MATLAB: output size = ceil(scale * input size)
    return (math.ceil(scale * hw[0]), math.ceil(scale * hw[1])), (float(scale), float(scale))  # type: ignore[operator]


def _separable_resize(
    x: torch.Tensor,
    out_hw: tuple[int, int],
    scales: tuple[float, float],
    kernel: Kernel,
    width: float,
    antialias: bool,
) -> torch.Tensor:
    if not x.is_floating_point():
        raise TypeError(f"expected a floating-point tensor, got {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"expected (..., H, W), got shape {tuple(x.shape)}")
    in_dtype = x.dtype
    work = x if in_dtype in (torch.float32, torch.float64) else x.float()
    # the axis that shrinks most goes first (as MATLAB does); fewer flops, same result
    order = sorted((0, 1), key=lambda d: scales[d])
    for d in order:
        n_in = work.shape[-2 + d]
        if n_in == out_hw[d] and scales[d] == 1:
            continue
        mat = torch.from_numpy(resize_weights(n_in, out_hw[d], scales[d], kernel, width, antialias))
        mat = mat.to(device=work.device, dtype=work.dtype)
        if d == 0:
            work = torch.matmul(mat, work)  # (out_h, H) @ (..., H, W) -> (..., out_h, W)
        else:
            work = torch.matmul(work, mat.T)  # (..., H, W) @ (W, out_w) -> (..., H, out_w)
    return work.to(in_dtype)


def imresize_matlab(x: torch.Tensor, scale: float | None = None, size: tuple[int, int] | None = None) -> torch.Tensor:
    """MATLAB ``imresize(x, scale | [h w], 'bicubic')`` (antialiased) on ``(..., C, H, W)`` floats.

    Cubic a = -0.5, kernel widened by ``1/scale`` when downscaling, mirrored borders, normalised
    weights. With ``scale`` the output is ``ceil(scale * H) x ceil(scale * W)``. No rounding.
    """
    out_hw, scales = _out_sizes((x.shape[-2], x.shape[-1]), scale, size)
    return _separable_resize(x, out_hw, scales, cubic_kernel, 4.0, antialias=True)


def lanczos_resize(x: torch.Tensor, size: tuple[int, int], a: int = 3) -> torch.Tensor:
    """Separable Lanczos-``a`` resize of ``(..., C, H, W)`` floats to ``size = (h, w)``.

    Antialiased when downscaling (kernel stretched by ``1/scale``), mirrored borders, normalised
    weights. No rounding or clamping.
    """
    out_hw, scales = _out_sizes((x.shape[-2], x.shape[-1]), None, size)
    return _separable_resize(x, out_hw, scales, lambda t: lanczos_kernel(t, a), 2.0 * a, antialias=True)


def bicubic_upsample(x: torch.Tensor, scale: float) -> torch.Tensor:
    """torch bicubic (a = -0.75, align_corners=False) of ``(..., C, H, W)`` floats; no antialias."""
    lead = x.shape[:-3]
    x4 = x.reshape(-1, *x.shape[-3:])  # (N, C, H, W)
    out = F.interpolate(x4, scale_factor=scale, mode="bicubic", align_corners=False)
    return out.reshape(*lead, *out.shape[-3:])


def resize_pillow_bicubic(img_uint8: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pillow ``Image.resize(..., BICUBIC)`` of an ``(H, W, 3)`` uint8 image to ``size = (h, w)``."""
    from PIL import Image

    if img_uint8.dtype != np.uint8 or img_uint8.ndim != 3:
        raise ValueError(f"expected (H, W, C) uint8, got {img_uint8.dtype} {img_uint8.shape}")
    img = Image.fromarray(img_uint8)
    return np.asarray(img.resize((int(size[1]), int(size[0])), Image.Resampling.BICUBIC))


# Pillow's 8-bit resampling (libImaging/Resample.c): per axis, coefficients in fixed point with 22 fraction
# bits, accumulated in integers from a rounding offset, shifted back and clamped to 0..255; the horizontal
# pass runs first and its result is rounded to uint8 before the vertical one.
_PIL_PRECISION_BITS = 32 - 8 - 2


def pillow_coeffs(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's taps for one axis: first input index (out,) int64 and fixed-point weights (out, K) int64."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    first = np.zeros(out_size, np.int64)
    weights = np.zeros((out_size, ksize), np.int64)
    one = 1 << _PIL_PRECISION_BITS
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)  # int() truncates like C's (int)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        k = cubic_kernel((np.arange(xmax) + xmin - center + 0.5) / filterscale)  # a = -0.5, as Pillow's
        ww = k.sum()
        if ww != 0.0:
            k = k / ww
        fixed = np.where(k < 0, np.trunc(-0.5 + k * one), np.trunc(0.5 + k * one))
        first[xx] = xmin
        weights[xx, :xmax] = fixed.astype(np.int64)
    return first, weights


@functools.lru_cache(maxsize=32)
def _pillow_taps(in_size: int, out_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather indices (out, K) and int32 weights (out, K) of :func:`pillow_coeffs` on ``device``."""
    first, weights = pillow_coeffs(in_size, out_size)
    k = weights.shape[1]
    idx = torch.from_numpy(np.minimum(first[:, None] + np.arange(k), in_size - 1)).to(device)
    return idx, torch.from_numpy(weights.astype(np.int32)).to(device)


def _pillow_pass(x: torch.Tensor, in_size: int, out_size: int, dim: int) -> torch.Tensor:
    """One 8-bit Pillow pass along ``dim`` of an integer tensor (in_size -> out_size there) -> uint8.

    The taps are summed one at a time (a gather, a multiply and an add per tap over the whole batch), so the
    int32 temporaries are the output's size, not the output's size times the tap count."""
    idx, w = _pillow_taps(in_size, out_size, x.device)
    shape = [1] * x.ndim
    shape[dim] = out_size
    xi = x.to(torch.int32)
    # |sum| <= 255 * 1.2 * 2^22 < 2^31 (the taps' weights sum to 2^22): int32 is exact, in any order
    acc = xi.index_select(dim, idx[:, 0]).mul_(w[:, 0].view(shape)).add_(1 << (_PIL_PRECISION_BITS - 1))
    for k in range(1, idx.shape[1]):
        acc.add_(xi.index_select(dim, idx[:, k]).mul_(w[:, k].view(shape)))
    return acc.bitwise_right_shift_(_PIL_PRECISION_BITS).clamp_(0, 255).to(torch.uint8)


def pillow_bicubic_uint8(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Pillow ``Image.resize(size[::-1], BICUBIC)`` of uint8 frames ``(..., C, H, W)`` -> ``(..., C, h, w)``.

    Bit-exact with Pillow (tests/test_resize.py), on the tensor's device: FlashVSR's official LQ upsampling
    without a round trip through the CPU. All frames at once; it holds two int32 tensors of the output's size
    (208 MB for the 8 frames of a 1408x768 chunk).
    """
    if x.dtype != torch.uint8 or x.ndim < 3:
        raise ValueError(f"expected (..., C, H, W) uint8, got {x.dtype} {tuple(x.shape)}")
    h, w = x.shape[-2:]
    oh, ow = int(size[0]), int(size[1])
    y = x.reshape(-1, *x.shape[-3:])  # (N, C, H, W)
    if ow != w:
        y = _pillow_pass(y, w, ow, -1)  # (N, C, H, ow): the horizontal pass first, rounded to uint8, as Pillow
    if oh != h:
        y = _pillow_pass(y, h, oh, -2)  # (N, C, oh, ow)
    return y.reshape(*x.shape[:-2], oh, ow)
