"""Synthetic low-quality (LQ) clips for training: BI, BD and a RealBasicVSR-style real-world pipeline.

All functions take a clip as a float tensor ``(T, 3, H, W)`` in ``[0, 1]`` and return the LQ clip
``(T, 3, H/scale, W/scale)`` in ``[0, 1]``, quantised to 8-bit levels (``k / 255``).

Reproducibility: every random choice comes from one ``numpy.random.Generator`` built from the
``seed`` argument (anything ``numpy.random.default_rng`` accepts: an int or a sequence of ints).
The same seed gives bit-identical output; codecs run single-threaded so that the result does not
depend on the machine's core count.

Protocols
---------
* **BI** (:func:`bi`): MATLAB-compatible bicubic ``imresize(x, 1/scale)`` with antialiasing, then
  rounding to uint8 levels. This is the protocol of REDS4 / Vimeo-90K-T / Vid4-BI.
* **BD** (:func:`bd`): 13x13 Gaussian blur (sigma 1.6, kernel normalised to sum 1, reflect borders
  without edge duplication) then keep every ``scale``-th pixel **starting at offset 0** (LR pixel
  ``(i, j)`` is blurred HR pixel ``(scale*i, scale*j)``). This matches the DUF / BasicVSR
  ``duf_downsample`` convention used for Vid4-BD and UDM10.
* **Real** (:func:`real_degrade`): second-order degradation after Real-ESRGAN / RealBasicVSR, with
  the same kernel / resize / noise level / JPEG quality / codec for every frame of a clip and a
  fresh noise realisation per frame. See :class:`RealDegradationConfig` for the steps and ranges.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import av
import cv2
import numpy as np
import torch
from scipy.special import j1

from streamvsr.errors import DataError

SeedLike = int | Sequence[int] | np.random.SeedSequence

KERNEL_TYPES = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)
RESIZE_MODES = ("area", "bilinear", "bicubic")
_CV2_INTERP = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}

# Encoder -> (container, rate control). Encoders checked present in PyAV 18's bundled FFmpeg.
VIDEO_CODECS: dict[str, tuple[str, str]] = {
    "libx264": ("mp4", "crf"),
    "mpeg4": ("mp4", "bitrate"),
    "libvpx": ("webm", "bitrate"),
    "libvpx-vp9": ("webm", "bitrate"),
    "mpeg2video": ("mp4", "bitrate"),
    "libx265": ("mp4", "crf"),
}

# Default per-sample mixture for ``degrade(kind="mix")``: our choice, not from a paper.
DEFAULT_MIX: dict[str, float] = {"real": 0.6, "bi": 0.2, "bd": 0.2}


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------


def _check_probs(name: str, probs: Sequence[float], n: int) -> None:
    if len(probs) != n or any(p < 0 for p in probs) or sum(probs) <= 0:
        raise DataError(f"{name}: need {n} non-negative probabilities with a positive sum, got {probs}")


def _check_range(name: str, rng: tuple[float, float], lo: float = -math.inf) -> None:
    if len(rng) != 2 or rng[0] > rng[1] or rng[0] < lo:
        raise DataError(f"{name}: need (low, high) with {lo} <= low <= high, got {rng}")


@dataclass(frozen=True)
class BlurConfig:
    """Random blur kernel (one per clip).

    prob: chance to blur at all. kernel_sizes: odd sizes, uniform. kernel_types / kernel_probs:
    isotropic / anisotropic Gaussian, generalized Gaussian ``exp(-0.5 q^beta)`` and plateau
    ``1 / (1 + q^beta)``, with ``q = x^T S^-1 x``, ``S = R diag(sx^2, sy^2) R^T``. sigma_range: sx, sy
    (pixels), rotation uniform in [-pi, pi]. betag_range: generalized shape, half the draws in
    [low, 1] and half in [1, high]. betap_range: plateau shape, uniform. sinc_prob: chance to use a
    2-D sinc (jinc, circular low-pass) kernel instead; cutoff uniform in [pi/3, pi] for sizes < 13
    and [pi/5, pi] otherwise.
    """

    prob: float = 1.0
    kernel_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)
    kernel_types: tuple[str, ...] = KERNEL_TYPES
    kernel_probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sigma_range: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    sinc_prob: float = 0.1

    def __post_init__(self) -> None:
        if not self.kernel_sizes or any(k < 3 or k % 2 == 0 for k in self.kernel_sizes):
            raise DataError(f"blur kernel sizes must be odd and >= 3, got {self.kernel_sizes}")
        unknown = set(self.kernel_types) - set(KERNEL_TYPES)
        if unknown:
            raise DataError(f"unknown blur kernel types {sorted(unknown)}; known: {KERNEL_TYPES}")
        _check_probs("kernel_probs", self.kernel_probs, len(self.kernel_types))
        _check_range("sigma_range", self.sigma_range, 1e-3)
        _check_range("betag_range", self.betag_range, 1e-3)
        _check_range("betap_range", self.betap_range, 1e-3)


@dataclass(frozen=True)
class ResizeConfig:
    """Random resize (one factor per clip).

    mode_probs: chances of (up, down, keep). Up draws a factor uniform in [1, high], down in
    [low, 1] from scale_range. In stage 1 the factor applies to the current size; in stage 2 it
    applies to the final LR size (as in Real-ESRGAN), so stage 2 and the final step run at about LR
    resolution. interp_probs: chances of area / bilinear / bicubic (OpenCV).
    """

    mode_probs: tuple[float, float, float] = (0.2, 0.7, 0.1)
    scale_range: tuple[float, float] = (0.15, 1.5)
    interp_probs: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)

    def __post_init__(self) -> None:
        _check_probs("mode_probs", self.mode_probs, 3)
        _check_probs("interp_probs", self.interp_probs, 3)
        _check_range("scale_range", self.scale_range, 1e-3)


@dataclass(frozen=True)
class NoiseConfig:
    """Random additive noise (level per clip, realisation per frame).

    prob: chance to add noise at all. gaussian_prob: Gaussian, else Poisson. gaussian_sigma_range:
    std in 8-bit levels. poisson_scale_range: multiplier of the shot noise of an 8-bit sensor
    (``Poisson(255 x) / 255 - x``; above 20 expected counts it is drawn from the matching normal
    law, which is indistinguishable at that count and ~8x faster). gray_prob: same noise on all
    three channels (luma noise) instead of per channel.
    """

    prob: float = 1.0
    gaussian_prob: float = 0.5
    gaussian_sigma_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_prob: float = 0.4

    def __post_init__(self) -> None:
        _check_range("gaussian_sigma_range", self.gaussian_sigma_range, 0.0)
        _check_range("poisson_scale_range", self.poisson_scale_range, 0.0)


@dataclass(frozen=True)
class StageConfig:
    """One degradation order: blur -> resize -> noise -> JPEG (quality uniform int in jpeg_range)."""

    blur: BlurConfig = field(default_factory=BlurConfig)
    resize: ResizeConfig = field(default_factory=ResizeConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    jpeg_prob: float = 1.0
    jpeg_range: tuple[int, int] = (30, 95)

    def __post_init__(self) -> None:
        _check_range("jpeg_range", self.jpeg_range, 1)
        if self.jpeg_range[1] > 100:
            raise DataError(f"jpeg_range must lie in [1, 100], got {self.jpeg_range}")


@dataclass(frozen=True)
class VideoCodecConfig:
    """Lossy video compression of the whole LR clip (one encode, in memory, through PyAV).

    prob: chance to apply. codecs / codec_probs: encoder names (keys of ``VIDEO_CODECS``).
    crf_range: uniform int CRF for CRF-controlled encoders (libx264, libx265). bpp_range: target
    bits per pixel per frame for bitrate-controlled ones (log-uniform), bitrate = bpp*w*h*fps.
    Defaults give roughly the PSNR span of JPEG quality 30..95 on 64x64 DAVIS clips (measured:
    x264 CRF 18 -> 31 dB, CRF 35 -> 21.5 dB; mpeg4/VP8 0.2 bpp -> 21-24.5 dB, 3 bpp -> 32-34 dB).
    """

    prob: float = 1.0
    codecs: tuple[str, ...] = ("libx264", "mpeg4", "libvpx")
    codec_probs: tuple[float, ...] = (1 / 3, 1 / 3, 1 / 3)
    crf_range: tuple[int, int] = (18, 35)
    bpp_range: tuple[float, float] = (0.2, 3.0)
    fps: int = 25

    def __post_init__(self) -> None:
        unknown = set(self.codecs) - set(VIDEO_CODECS)
        if unknown:
            raise DataError(f"unsupported video codecs {sorted(unknown)}; supported: {sorted(VIDEO_CODECS)}")
        _check_probs("codec_probs", self.codec_probs, len(self.codecs))
        _check_range("crf_range", self.crf_range, 0)
        _check_range("bpp_range", self.bpp_range, 1e-4)


def _stage2_default() -> StageConfig:
    return StageConfig(
        blur=BlurConfig(prob=0.8, sigma_range=(0.2, 1.5)),
        resize=ResizeConfig(mode_probs=(0.3, 0.4, 0.3), scale_range=(0.3, 1.2)),
        noise=NoiseConfig(gaussian_sigma_range=(1.0, 25.0), poisson_scale_range=(0.05, 2.5)),
    )


@dataclass(frozen=True)
class RealDegradationConfig:
    """Second-order real-world degradation (Real-ESRGAN ranges; codec step after RealBasicVSR).

    Steps (each random choice made once per clip):

    1. ``stage1``: blur (sigma 0.2..3), resize (up 20% / down 70% / keep 10%, factor 0.15..1.5),
       noise (Gaussian sigma 1..30 or Poisson scale 0.05..3, 40% gray), JPEG 30..95.
    2. ``stage2``: blur with prob 0.8 (sigma 0.2..1.5), resize relative to the LR size (30/40/30%,
       0.3..1.2), noise (sigma 1..25, Poisson 0.05..2.5), JPEG 30..95.
    3. final, in random order: [resize to ``H/scale x W/scale`` (random interp) + sinc filter with
       prob ``final_sinc_prob`` (size 7..21, cutoff pi/3..pi)] and [JPEG with prob
       ``final_jpeg_prob``, quality in ``final_jpeg_range``]; then ``video`` compression of the whole
       LR clip. RealBasicVSR also encodes once after stage 1; we encode once per clip for speed.

    ``final_jpeg_prob`` defaults to 0.5 (Real-ESRGAN uses 1.0 and no codec; RealBasicVSR uses no
    final JPEG but a codec): our compromise so that JPEG + codec does not stack on every sample.
    """

    stage1: StageConfig = field(default_factory=StageConfig)
    stage2: StageConfig = field(default_factory=_stage2_default)
    final_sinc_prob: float = 0.8
    final_interp_probs: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)
    final_jpeg_prob: float = 0.5
    final_jpeg_range: tuple[int, int] = (30, 95)
    video: VideoCodecConfig = field(default_factory=VideoCodecConfig)

    def __post_init__(self) -> None:
        _check_probs("final_interp_probs", self.final_interp_probs, 3)
        _check_range("final_jpeg_range", self.final_jpeg_range, 1)


DEFAULT_REAL_CONFIG = RealDegradationConfig()


# ----------------------------------------------------------------------------------------------
# Kernels (pure functions)
# ----------------------------------------------------------------------------------------------


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2
    xx, yy = np.meshgrid(ax, ax)  # (k, k) each; xx varies along columns
    return xx, yy


def _quad_form(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """``x^T S^-1 x`` on a ``size x size`` grid, ``S = R(theta) diag(sx^2, sy^2) R(theta)^T``."""
    xx, yy = _grid(size)
    c, s = math.cos(theta), math.sin(theta)
    u = c * xx + s * yy  # coordinates in the kernel's principal axes (R^T x)
    v = -s * xx + c * yy
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def _normalise(k: np.ndarray) -> np.ndarray:
    return (k / k.sum()).astype(np.float32)


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0) -> np.ndarray:
    """(An)isotropic Gaussian kernel ``(size, size)`` summing to 1."""
    q = _quad_form(size, sigma_x, sigma_x if sigma_y is None else sigma_y, theta)
    return _normalise(np.exp(-0.5 * q))


def generalized_gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> np.ndarray:
    """Generalized Gaussian ``exp(-0.5 q^beta)`` (Real-ESRGAN eq. for k_gg), sums to 1."""
    return _normalise(np.exp(-0.5 * _quad_form(size, sigma_x, sigma_y, theta) ** beta))


def plateau_kernel(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> np.ndarray:
    """Plateau-shaped kernel ``1 / (1 + q^beta)``, sums to 1."""
    return _normalise(1.0 / (1.0 + _quad_form(size, sigma_x, sigma_y, theta) ** beta))


def sinc_kernel(size: int, cutoff: float) -> np.ndarray:
    """2-D circular low-pass (jinc) kernel with cutoff ``cutoff`` rad/pixel, sums to 1.

    ``k(r) = w J1(w r) / (2 pi r)`` with limit ``w^2 / (4 pi)`` at ``r = 0``.
    """
    xx, yy = _grid(size)
    r = np.hypot(xx, yy)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = cutoff * j1(cutoff * r) / (2 * np.pi * r)
    k[r == 0] = cutoff**2 / (4 * np.pi)
    return _normalise(k)


def bd_kernel(size: int = 13, sigma: float = 1.6) -> np.ndarray:
    """The BD protocol's isotropic Gaussian ``(size, size)``, sums to 1."""
    return gaussian_kernel(size, sigma)


def sample_blur_kernel(rng: np.random.Generator, cfg: BlurConfig) -> np.ndarray:
    """Draw one kernel ``(k, k)`` according to ``cfg`` (ignores ``cfg.prob``)."""
    size = int(rng.choice(cfg.kernel_sizes))
    if rng.random() < cfg.sinc_prob:
        lo = math.pi / 3 if size < 13 else math.pi / 5
        return sinc_kernel(size, float(rng.uniform(lo, math.pi)))
    p = np.asarray(cfg.kernel_probs, dtype=np.float64)
    kind = cfg.kernel_types[int(rng.choice(len(p), p=p / p.sum()))]
    sx = float(rng.uniform(*cfg.sigma_range))
    if kind.endswith("aniso"):
        sy = float(rng.uniform(*cfg.sigma_range))
        theta = float(rng.uniform(-math.pi, math.pi))
    else:
        sy, theta = sx, 0.0
    if kind.startswith("generalized"):
        lo, hi = cfg.betag_range
        beta = float(rng.uniform(lo, min(1.0, hi)) if rng.random() < 0.5 else rng.uniform(max(1.0, lo), hi))
        return generalized_gaussian_kernel(size, sx, sy, theta, beta)
    if kind.startswith("plateau"):
        return plateau_kernel(size, sx, sy, theta, float(rng.uniform(*cfg.betap_range)))
    return gaussian_kernel(size, sx, sy, theta)


# ----------------------------------------------------------------------------------------------
# Clip operations on numpy clips (T, H, W, 3) float32 in [0, 1]
# ----------------------------------------------------------------------------------------------


def _to_numpy(frames: torch.Tensor) -> np.ndarray:
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise DataError(f"expected frames (T, 3, H, W), got shape {tuple(frames.shape)}")
    return np.ascontiguousarray(frames.detach().to("cpu", torch.float32).permute(0, 2, 3, 1).numpy())


def _to_torch(clip: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(clip)).permute(0, 3, 1, 2).contiguous()  # (T, 3, H, W)


def quantise(x: torch.Tensor) -> torch.Tensor:
    """Round to 8-bit levels: ``round(255 x) / 255`` clamped to [0, 1]."""
    return (x.clamp(0, 1) * 255).round() / 255


def _quantise_np(clip: np.ndarray) -> np.ndarray:
    return np.round(np.clip(clip, 0.0, 1.0) * 255.0).astype(np.float32) / 255.0


def _to_uint8(clip: np.ndarray) -> np.ndarray:
    return np.round(np.clip(clip, 0.0, 1.0) * 255.0).astype(np.uint8)


def separable_terms(kernel: np.ndarray, rel_tol: float = 5e-4) -> list[tuple[np.ndarray, np.ndarray]]:
    """Low-rank split ``kernel ~ sum_i col_i row_i^T`` (SVD), dropping singular values < rel_tol * max."""
    u, s, vt = np.linalg.svd(np.asarray(kernel, dtype=np.float64))
    keep = int(np.sum(s > s[0] * rel_tol))
    return [
        ((u[:, i] * math.sqrt(s[i])).astype(np.float32), (vt[i] * math.sqrt(s[i])).astype(np.float32))
        for i in range(keep)
    ]


def filter_clip(clip: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlate every frame with ``kernel`` (reflect-101 borders). ``(T, H, W, 3)`` -> same.

    Kernels of low numerical rank (isotropic Gaussians are rank 1, most others <= 4) run as a few
    separable passes, several times faster than a 2-D (DFT) filter; the truncation error is below
    1e-3 of a level in [0, 1].
    """
    k = np.ascontiguousarray(kernel, dtype=np.float32)
    terms = separable_terms(k)
    separable = len(terms) == 1 or (k.shape[0] >= 11 and len(terms) <= 4)
    out = np.empty_like(clip)
    for t in range(clip.shape[0]):
        if not separable:
            out[t] = cv2.filter2D(clip[t], -1, k, borderType=cv2.BORDER_REFLECT_101)
            continue
        acc = None
        for col, row in terms:
            z = cv2.sepFilter2D(clip[t], -1, row, col, borderType=cv2.BORDER_REFLECT_101)
            acc = z if acc is None else cv2.add(acc, z)
        out[t] = acc
    return out


def resize_clip(clip: np.ndarray, height: int, width: int, mode: str) -> np.ndarray:
    """Resize every frame to ``(height, width)`` with OpenCV area / bilinear / bicubic."""
    if clip.shape[1:3] == (height, width):
        return clip
    interp = _CV2_INTERP[mode]
    out = np.empty((clip.shape[0], height, width, 3), dtype=np.float32)
    for t in range(clip.shape[0]):
        out[t] = cv2.resize(clip[t], (width, height), interpolation=interp)
    return np.clip(out, 0.0, 1.0) if mode == "bicubic" else out


def jpeg_clip(clip: np.ndarray, quality: int) -> np.ndarray:
    """JPEG-compress every frame at ``quality`` (OpenCV, 4:2:0). Returns 8-bit levels as float."""
    u8 = _to_uint8(clip)
    out = np.empty(u8.shape, dtype=np.float32)
    params = [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)]
    for t in range(u8.shape[0]):
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(u8[t, :, :, ::-1]), params)  # RGB -> BGR
        if not ok:
            raise RuntimeError("cv2.imencode failed")
        out[t] = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
    return out / 255.0


def _luma(clip: np.ndarray) -> np.ndarray:
    return clip @ np.asarray([0.299, 0.587, 0.114], dtype=np.float32)  # (T, H, W)


def add_noise(clip: np.ndarray, rng: np.random.Generator, cfg: NoiseConfig) -> np.ndarray:
    """Add Gaussian or Poisson noise (parameters drawn once, realisation per frame/pixel)."""
    t, h, w, _ = clip.shape
    gray = rng.random() < cfg.gray_prob
    shape = (t, h, w, 1) if gray else clip.shape
    if rng.random() < cfg.gaussian_prob:
        sigma = float(rng.uniform(*cfg.gaussian_sigma_range)) / 255.0
        noise = rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma)
    else:
        scale = float(rng.uniform(*cfg.poisson_scale_range))
        base = _luma(clip)[..., None] if gray else clip
        lam = np.clip(base, 0.0, 1.0) * 255.0  # expected photon counts of an 8-bit sensor
        # Normal approximation N(lam, lam) where lam > 20; exact Poisson on the dark pixels.
        noise = rng.standard_normal(shape, dtype=np.float32) * np.sqrt(lam)
        dark = lam <= 20.0
        if dark.any():
            noise[dark] = rng.poisson(lam[dark]).astype(np.float32) - lam[dark]
        noise *= np.float32(scale / 255.0)
    return np.clip(clip + noise, 0.0, 1.0)


def _even_pad(u8: np.ndarray) -> np.ndarray:
    ph, pw = u8.shape[1] % 2, u8.shape[2] % 2
    if ph or pw:
        u8 = np.pad(u8, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    return u8


def video_codec_clip(
    clip_u8: np.ndarray, codec: str, *, crf: int | None = None, bitrate: int | None = None, fps: int = 25
) -> np.ndarray:
    """Encode ``(T, H, W, 3)`` uint8 RGB as one yuv420p video in memory and decode it back.

    Single-threaded encoder and decoder (deterministic). Odd sizes are edge-padded to even for
    4:2:0 and cropped back.
    """
    if codec not in VIDEO_CODECS:
        raise DataError(f"unsupported video codec {codec!r}; supported: {sorted(VIDEO_CODECS)}")
    container_fmt, _ = VIDEO_CODECS[codec]
    t, h, w, _ = clip_u8.shape
    padded = _even_pad(clip_u8)
    options: dict[str, str] = {}
    if crf is not None:
        options["crf"] = str(int(crf))
    if codec == "libx264":
        options["x264-params"] = "mbtree=0"  # MB-tree is not reproducible on tiny frames
    if codec == "libx265":
        options["x265-params"] = "log-level=none"
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container_fmt) as out:
        stream = out.add_stream(codec, rate=fps, options=options)
        stream.width, stream.height = padded.shape[2], padded.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        if bitrate is not None:
            stream.bit_rate = int(bitrate)
        for frame in padded:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    buf.seek(0)
    decoded = []
    with av.open(buf, mode="r") as inp:
        vs = inp.streams.video[0]
        vs.codec_context.thread_count = 1
        for frame in inp.decode(vs):
            decoded.append(frame.to_ndarray(format="rgb24"))
    if len(decoded) != t:
        raise RuntimeError(f"{codec} round trip returned {len(decoded)} frames for {t}")
    return np.stack(decoded)[:, :h, :w]


def _choice(rng: np.random.Generator, items: Sequence[Any], probs: Sequence[float]) -> Any:
    p = np.asarray(probs, dtype=np.float64)
    return items[int(rng.choice(len(items), p=p / p.sum()))]


def _random_codec(clip: np.ndarray, rng: np.random.Generator, cfg: VideoCodecConfig) -> np.ndarray:
    codec = _choice(rng, cfg.codecs, cfg.codec_probs)
    _, control = VIDEO_CODECS[codec]
    h, w = clip.shape[1:3]
    if control == "crf":
        kw = {"crf": int(rng.integers(cfg.crf_range[0], cfg.crf_range[1] + 1))}
    else:
        lo, hi = np.log(cfg.bpp_range[0]), np.log(cfg.bpp_range[1])
        bpp = float(np.exp(rng.uniform(lo, hi)))
        kw = {"bitrate": max(1000, int(bpp * h * w * cfg.fps))}
    out = video_codec_clip(_to_uint8(clip), codec, fps=cfg.fps, **kw)
    return out.astype(np.float32) / 255.0


def _stage(clip: np.ndarray, rng: np.random.Generator, cfg: StageConfig, ref_hw: tuple[int, int]) -> np.ndarray:
    """One order of blur -> resize (factor relative to ``ref_hw``) -> noise -> JPEG."""
    if rng.random() < cfg.blur.prob:
        clip = filter_clip(clip, sample_blur_kernel(rng, cfg.blur))
    mode = _choice(rng, ("up", "down", "keep"), cfg.resize.mode_probs)
    lo, hi = cfg.resize.scale_range
    factor = 1.0
    if mode == "up":
        factor = float(rng.uniform(1.0, max(1.0, hi)))
    elif mode == "down":
        factor = float(rng.uniform(min(1.0, lo), 1.0))
    interp = _choice(rng, RESIZE_MODES, cfg.resize.interp_probs)
    h, w = (max(4, int(ref_hw[0] * factor)), max(4, int(ref_hw[1] * factor)))
    clip = resize_clip(clip, h, w, interp)
    if rng.random() < cfg.noise.prob:
        clip = add_noise(clip, rng, cfg.noise)
    if rng.random() < cfg.jpeg_prob:
        clip = jpeg_clip(clip, int(rng.integers(cfg.jpeg_range[0], cfg.jpeg_range[1] + 1)))
    return clip


# ----------------------------------------------------------------------------------------------
# Public degradations
# ----------------------------------------------------------------------------------------------


def _check_scale(frames: torch.Tensor, scale: int) -> None:
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise DataError(f"expected frames (T, 3, H, W), got shape {tuple(frames.shape)}")
    if scale < 1 or frames.shape[-2] % scale or frames.shape[-1] % scale:
        raise DataError(f"frame size {tuple(frames.shape[-2:])} is not divisible by scale {scale}")


def bi(frames: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """BI: MATLAB ``imresize(x, 1/scale, 'bicubic')`` then 8-bit rounding. ``(T,3,H,W)`` -> ``(T,3,H/s,W/s)``."""
    from streamvsr.ops.resize import imresize_matlab

    _check_scale(frames, scale)
    return quantise(imresize_matlab(frames.to(torch.float32), 1.0 / scale))


def bd(frames: torch.Tensor, scale: int = 4, sigma: float = 1.6, size: int = 13) -> torch.Tensor:
    """BD: Gaussian blur (13x13, sigma 1.6, reflect-101) then every ``scale``-th pixel from offset 0."""
    _check_scale(frames, scale)
    blurred = filter_clip(_to_numpy(frames), bd_kernel(size, sigma))
    return quantise(_to_torch(blurred[:, ::scale, ::scale]))


def real_degrade(
    frames: torch.Tensor, seed: SeedLike, scale: int = 4, cfg: RealDegradationConfig = DEFAULT_REAL_CONFIG
) -> torch.Tensor:
    """Real-world second-order degradation (see :class:`RealDegradationConfig`).

    ``(T, 3, H, W)`` in [0, 1] -> ``(T, 3, H/scale, W/scale)`` on 8-bit levels; same seed, same output.
    """
    _check_scale(frames, scale)
    rng = np.random.default_rng(seed)
    clip = _to_numpy(frames)  # (T, H, W, 3)
    h, w = clip.shape[1:3]
    lr_hw = (h // scale, w // scale)
    clip = _stage(clip, rng, cfg.stage1, (h, w))
    clip = _stage(clip, rng, cfg.stage2, lr_hw)

    def resize_sinc(c: np.ndarray) -> np.ndarray:
        c = resize_clip(c, *lr_hw, _choice(rng, RESIZE_MODES, cfg.final_interp_probs))
        if rng.random() < cfg.final_sinc_prob:
            size = int(rng.choice(cfg.stage1.blur.kernel_sizes))
            c = np.clip(filter_clip(c, sinc_kernel(size, float(rng.uniform(math.pi / 3, math.pi)))), 0.0, 1.0)
        return c

    def final_jpeg(c: np.ndarray) -> np.ndarray:
        if rng.random() < cfg.final_jpeg_prob:
            c = jpeg_clip(c, int(rng.integers(cfg.final_jpeg_range[0], cfg.final_jpeg_range[1] + 1)))
        return c

    if rng.random() < 0.5:
        clip = final_jpeg(resize_sinc(clip))
    else:
        clip = resize_sinc(final_jpeg(clip))
    if rng.random() < cfg.video.prob:
        clip = _random_codec(clip, rng, cfg.video)
    return _to_torch(_quantise_np(clip))


def parse_mix(spec: str) -> str | dict[str, float]:
    """``"bi:0.5,real:0.5"`` -> ``{"bi": 0.5, "real": 0.5}``; a plain kind name is returned unchanged."""
    if ":" not in spec:
        return spec
    out: dict[str, float] = {}
    for part in spec.split(","):
        name, _, p = part.partition(":")
        try:
            out[name.strip()] = float(p)
        except ValueError:
            raise DataError(f"degradation mixture must read kind:probability,..., got {spec!r}") from None
    return out


def degrade(
    frames: torch.Tensor,
    kind: str | Mapping[str, float] = "mix",
    seed: SeedLike = 0,
    scale: int = 4,
    *,
    real_cfg: RealDegradationConfig = DEFAULT_REAL_CONFIG,
) -> torch.Tensor:
    """Dispatch to :func:`bi`, :func:`bd` or :func:`real_degrade`.

    ``kind`` is ``"bi" | "bd" | "real" | "mix"``, a mapping ``{kind: probability}`` or its string form
    ``"bi:0.5,real:0.5"`` (:func:`parse_mix`); ``"mix"`` means :data:`DEFAULT_MIX`. A mixture picks one kind
    per call from ``seed`` (a stream separate from the one the real pipeline uses).
    """
    if isinstance(kind, str):
        kind = parse_mix(kind)
    if not isinstance(kind, str) or kind == "mix":
        mix = DEFAULT_MIX if kind == "mix" else dict(kind)
        names = sorted(mix)
        if not names or set(names) - {"bi", "bd", "real"}:
            raise DataError(f"degradation mixture must use kinds bi/bd/real, got {sorted(mix)}")
        _check_probs("degradation mixture", [mix[n] for n in names], len(names))
        pick_rng = np.random.default_rng(np.random.SeedSequence(_seed_entropy(seed) + [0x6D6978]))
        kind = _choice(pick_rng, names, [mix[n] for n in names])
    if kind == "bi":
        return bi(frames, scale)
    if kind == "bd":
        return bd(frames, scale)
    if kind == "real":
        return real_degrade(frames, seed, scale, real_cfg)
    raise DataError(f"unknown degradation {kind!r}; use bi, bd, real or mix")


def _seed_entropy(seed: SeedLike) -> list[int]:
    if isinstance(seed, np.random.SeedSequence):
        ent = seed.entropy
        return [int(e) for e in (ent if isinstance(ent, Sequence) else [ent])] + list(seed.spawn_key)
    if isinstance(seed, int | np.integer):
        return [int(seed)]
    return [int(s) for s in seed]
