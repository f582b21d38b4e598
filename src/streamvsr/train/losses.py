"""Training losses as pure functions.

References: [FlashVSR] Zhuang et al., arXiv 2510.12747 (spec flashvsr.md §1.4, §5); [RF] Liu et al. 2022,
"Flow Straight and Fast" (rectified flow); [SD3] Esser et al. 2024 (timestep shift); [LPIPS] Zhang et al.
2018; [VAE] Kingma & Welling 2014; [Charbonnier] Charbonnier et al. 1994 / Lai et al. 2017 (LapSRN).

Pixel tensors are in [-1, 1]. Every loss returns a scalar mean unless noted. Perceptual losses are
pluggable: any callable ``(x, y) -> per-sample or scalar distance`` on (N, 3, H, W) images in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "PerceptualFn",
    "charbonnier",
    "detail_energy",
    "flow_matching_loss",
    "flow_matching_target",
    "flow_matching_xt",
    "kl_diag_gaussian",
    "l1",
    "local_detail_rms",
    "mse",
    "perceptual",
    "psnr",
    "sample_flow_timesteps",
    "shift_timesteps",
    "tc_decoder_loss",
    "temporal_difference",
    "texture_mask",
    "video_to_images",
    "x0_from_velocity",
]

PerceptualFn = Callable[..., Tensor]  # (x, y) or (x, y, weight (N, 1, H, W)) -> (N,)


# --- pixel losses ----------------------------------------------------------------------------------------


def l1(x: Tensor, y: Tensor) -> Tensor:
    """Mean absolute error, mean |x - y|."""
    return (x.float() - y.float()).abs().mean()


def mse(x: Tensor, y: Tensor) -> Tensor:
    """Mean squared error, mean (x - y)^2 (the ||x - x_gt||^2 term of [FlashVSR] Eq. 3 and Stage 3)."""
    return (x.float() - y.float()).square().mean()


def charbonnier(x: Tensor, y: Tensor, eps: float = 1e-3) -> Tensor:
    """Charbonnier loss, mean sqrt((x - y)^2 + eps^2): a smooth L1 [Charbonnier]."""
    d = x.float() - y.float()
    return torch.sqrt(d * d + eps * eps).mean()


def temporal_difference(x: Tensor, y: Tensor) -> Tensor:
    """Mean squared error of the frame-to-frame changes of two videos (B, C, F, H, W), F >= 2:

    mean ((x[t+1] - x[t]) - (y[t+1] - y[t]))^2. Zero for any output whose changes follow the target's, so it
    penalises flicker (detail that appears and vanishes between frames) and leaves a constant offset alone;
    our addition to Stage 3, not a term of [FlashVSR].
    """
    if x.ndim != 5 or x.shape[2] < 2:
        raise ValueError(f"temporal_difference needs videos (B, C, F >= 2, H, W), got {tuple(x.shape)}")
    dx = x.float().diff(dim=2)
    dy = y.float().diff(dim=2)
    return (dx - dy).square().mean()


def detail_energy(x: Tensor, y: Tensor, tile: int = 16, eps: float = 1e-6) -> Tensor:
    """How far the local amount of fine detail of x is from y's, in any phase: mean |rms_x - rms_y|.

    Images (N, C, H, W) or videos (B, C, F, H, W). Fine detail is the image minus its 5x5 box blur (a high-pass
    that keeps 70% or more of the amplitude from about 0.15 cycle per pixel on, the hatching's band); rms_* is its
    root mean square over ``tile`` x ``tile`` tiles, per channel. Unlike MSE the term does not ask detail to sit
    where the target's does, only that each tile has as much of it: texture drawn over a flat target (the
    hatching of docs/training.md) costs its full amount, a texture one pixel off costs next to nothing. Ours,
    not a term of [FlashVSR].
    """
    if x.shape != y.shape or x.ndim not in (4, 5):
        raise ValueError(
            f"detail_energy needs two images or videos of one shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.ndim == 5:
        x, y = video_to_images(x), video_to_images(y)
    return (local_detail_rms(x, tile, eps) - local_detail_rms(y, tile, eps)).abs().mean()


def local_detail_rms(z: Tensor, tile: int = 16, eps: float = 1e-6) -> Tensor:
    """(N, C, H, W) -> (N, C, ceil(H / tile), ceil(W / tile)): the root mean square of the fine detail (the image
    minus its 5x5 box blur) over each ``tile`` x ``tile`` tile, per channel (see :func:`detail_energy`)."""
    z = z.float()
    hp = z - torch.nn.functional.avg_pool2d(z, 5, stride=1, padding=2, count_include_pad=False)
    return (torch.nn.functional.avg_pool2d(hp.square(), tile, stride=tile, ceil_mode=True) + eps).sqrt()


def texture_mask(y: Tensor, low: float, high: float, tile: int = 16) -> Tensor:
    """(N, C, H, W) images in [-1, 1] -> (N, 1, H, W) weights in [0, 1]: 0 where the image is flat, 1 where it has
    texture. The tile's detail RMS (:func:`local_detail_rms`, mean over channels) is mapped linearly from ``low``
    (weight 0) to ``high`` (weight 1) and clamped; each tile's weight covers its pixels. Ours: it confines an
    LPIPS term to textured targets, so that flat areas get no invented texture (docs/training.md)."""
    if not high > low:
        raise ValueError(f"texture_mask needs high > low, got {low}, {high}")
    r = local_detail_rms(y, tile).mean(dim=1, keepdim=True)  # (N, 1, h, w)
    w = ((r - low) / (high - low)).clamp(0.0, 1.0)
    w = w.repeat_interleave(tile, dim=2).repeat_interleave(tile, dim=3)
    return w[..., : y.shape[-2], : y.shape[-1]]


def psnr(x: Tensor, y: Tensor, data_range: float = 2.0) -> Tensor:
    """PSNR in dB over the whole tensor, 10 log10(range^2 / MSE); range 2 for [-1, 1] data."""
    err = (x.float() - y.float()).square().mean().clamp_min(1e-12)
    return 10.0 * torch.log10(torch.tensor(data_range**2, device=err.device) / err)


def video_to_images(v: Tensor) -> Tensor:
    """(B, C, F, H, W) -> (B*F, C, H, W), so image losses (LPIPS) apply per frame."""
    b, c, f, h, w = v.shape
    return v.transpose(1, 2).reshape(b * f, c, h, w)


def perceptual(fn: PerceptualFn | None, x: Tensor, y: Tensor, texture: tuple[float, float] | None = None) -> Tensor:
    """Mean perceptual distance (e.g. LPIPS [LPIPS]) of images or videos; 0 when ``fn`` is None.

    ``texture`` (low, high): weigh the distance's spatial maps by :func:`texture_mask` of the target ``y``, so that
    it counts only where ``y`` has texture (``fn`` must then take a third argument, the weight map)."""
    if fn is None:
        return x.new_zeros((), dtype=torch.float32)
    if x.ndim == 5:
        x, y = video_to_images(x), video_to_images(y)
    if texture is None:
        return fn(x, y).float().mean()
    return fn(x, y, texture_mask(y, *texture)).float().mean()


# --- latent regulariser ----------------------------------------------------------------------------------


def kl_diag_gaussian(mean: Tensor, logvar: Tensor | None) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) per latent element, averaged ([VAE] App. B):

    0.5 * (mean^2 + exp(logvar) - 1 - logvar). With ``logvar`` None (deterministic encoder) it is the L2
    penalty 0.5 * mean^2.
    """
    m = mean.float()
    if logvar is None:
        return 0.5 * m.square().mean()
    lv = logvar.float()
    return 0.5 * (m.square() + lv.exp() - 1.0 - lv).mean()


# --- flow matching ---------------------------------------------------------------------------------------


def flow_matching_xt(x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """Rectified-flow interpolation x_t = (1 - t) x0 + t eps ([RF] Eq. 1, data at t = 0); t in [0, 1].

    t = 1 is pure noise, matching FlashVSR's one step from sigma = 1 (spec §1.4).
    """
    tt = t.reshape(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
    return (1.0 - tt) * x0 + tt * noise


def flow_matching_target(x0: Tensor, noise: Tensor) -> Tensor:
    """Velocity target v = d x_t / dt = eps - x0 [RF] Eq. 1."""
    return noise - x0


def x0_from_velocity(x_t: Tensor, v: Tensor, t: Tensor) -> Tensor:
    """Clean estimate x0 = x_t - t v; at t = 1 this is FlashVSR's x0 = eps - v (spec §1.4)."""
    tt = t.reshape(-1, *([1] * (x_t.ndim - 1))).to(x_t.dtype)
    return x_t - tt * v


def flow_matching_loss(v_pred: Tensor, x0: Tensor, noise: Tensor, weight: Tensor | None = None) -> Tensor:
    """Flow-matching loss E ||v_theta(x_t, t) - (eps - x0)||^2 [RF] Eq. 1 ([FlashVSR] Stages 1-2, L_FM).

    weight: optional per-sample weights (B,), e.g. a timestep weighting; the result is their weighted mean.
    """
    err = (v_pred.float() - flow_matching_target(x0.float(), noise.float())).square()
    per_sample = err.reshape(err.shape[0], -1).mean(dim=1)
    if weight is None:
        return per_sample.mean()
    w = weight.float().reshape(-1)
    return (per_sample * w).sum() / w.sum().clamp_min(1e-12)


def shift_timesteps(t: Tensor, shift: float) -> Tensor:
    """Timestep shift t' = s t / (1 + (s - 1) t) ([SD3] resolution-dependent shift); FlashVSR uses s = 5."""
    return shift * t / (1.0 + (shift - 1.0) * t)


def sample_flow_timesteps(
    n: int,
    shift: float = 1.0,
    logit_normal: bool = True,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Training timesteps in (0, 1): logit-normal(0, 1) [SD3] §3.1 or uniform, then shifted."""
    if logit_normal:
        t = torch.sigmoid(torch.randn(n, generator=generator, device=device))
    else:
        t = torch.rand(n, generator=generator, device=device)
    return shift_timesteps(t, shift) if shift != 1.0 else t


# --- decoder distillation --------------------------------------------------------------------------------


def tc_decoder_loss(
    x: Tensor,
    x_gt: Tensor,
    x_vae: Tensor | None = None,
    perceptual_fn: PerceptualFn | None = None,
    lam: float = 2.0,
) -> Tensor:
    """TC-decoder loss [FlashVSR] Eq. 3: ||x - x_gt||^2 + lam LPIPS(x, x_gt) + ||x - x_vae||^2 + lam LPIPS(x, x_vae).

    x_vae is the frozen autoencoder's decoding of the same latents (omit it to drop those two terms).
    """
    loss = mse(x, x_gt) + lam * perceptual(perceptual_fn, x, x_gt)
    if x_vae is not None:
        loss = loss + mse(x, x_vae) + lam * perceptual(perceptual_fn, x, x_vae)
    return loss
