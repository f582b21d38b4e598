"""Wan2.1 causal VAE decoder (FlashVSR "Full" decoder, spec §1.11.1 and §2.5).

Un-normalise (z*std + mean) -> ``conv2`` (1x1x1) -> ``decoder`` (Decoder3d) -> clamp [-1, 1].
Causal 3D convs pad time with 2 zero frames in front and, while streaming, keep the last 2 frames of
their input as the next call's front context. The first latent of a stream skips the temporal upsampling
convs, so latent 0 decodes to 1 frame and every later latent to 4 frames.

Keys are the official decoder-side keys (``conv2.*``, ``decoder.*``) without the ``model.`` prefix.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from streamvsr.models.flashvsr.config import WanVAEDecoderConfig

__all__ = ["WAN_LATENT_MEAN", "WAN_LATENT_STD", "WanVAEDecoder"]

WAN_LATENT_MEAN = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)  # fmt: skip
WAN_LATENT_STD = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
)  # fmt: skip


class _CausalConv3d(nn.Conv3d):
    """Conv3d with zero 'causal' time padding (2*p_t frames in front) and a streaming front-context cache."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int, int], padding: tuple[int, int, int]):
        super().__init__(cin, cout, kernel, padding=0)
        self.ctx = 2 * padding[0]
        self.spatial = (padding[2], padding[2], padding[1], padding[1])
        self._cache: torch.Tensor | None = None  # (B, C, <=ctx, H, W) last input frames of the stream

    def reset(self) -> None:
        self._cache = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.ctx:
            prev = self._cache if self._cache is not None else x[:, :, :0]
            full = torch.cat([prev, x], dim=2)
            self._cache = full[:, :, -self.ctx :].clone()
            missing = self.ctx - prev.shape[2]
            x = F.pad(full, (*self.spatial, missing, 0))
        elif any(self.spatial):
            x = F.pad(x, (*self.spatial, 0, 0))
        return super().forward(x)


class _RMSNorm(nn.Module):
    """x / ||x||_2 over channels * sqrt(C) * gamma; gamma (C,1,1,1) for videos, (C,1,1) for images."""

    def __init__(self, channels: int, images: bool = False) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels, 1, 1) if images else torch.ones(channels, 1, 1, 1))
        self.scale = math.sqrt(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) * self.scale * self.gamma


class _ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            _RMSNorm(cin),
            nn.SiLU(),
            _CausalConv3d(cin, cout, 3, (1, 1, 1)),
            _RMSNorm(cout),
            nn.SiLU(),
            nn.Dropout(0.0),
            _CausalConv3d(cout, cout, 3, (1, 1, 1)),
        )
        self.shortcut = _CausalConv3d(cin, cout, 1, (0, 0, 0)) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


class _AttentionBlock(nn.Module):
    """Per-frame single-head self-attention over h*w with a residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = _RMSNorm(channels, images=True)
        self.to_qkv = nn.Conv2d(channels, channels * 3, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        y = x.transpose(1, 2).reshape(b * t, c, h, w)
        qkv = self.to_qkv(self.norm(y)).reshape(b * t, 3 * c, h * w).transpose(1, 2)  # (BT, hw, 3C)
        q, k, v = qkv.unsqueeze(1).chunk(3, dim=-1)  # (BT, 1, hw, C) each
        y = F.scaled_dot_product_attention(q, k, v).squeeze(1).transpose(1, 2).reshape(b * t, c, h, w)
        y = self.proj(y).reshape(b, t, c, h, w).transpose(1, 2)
        return x + y


class _Resample(nn.Module):
    """upsample2d: nearest-exact x2 + Conv2d 3x3 C -> C/2 per frame. upsample3d additionally doubles time first
    with time_conv (3,1,1) C -> 2C interleaved to 2 frames; the first frame of a stream skips it."""

    def __init__(self, channels: int, temporal: bool) -> None:
        super().__init__()
        self.resample = nn.Sequential(
            nn.Upsample(scale_factor=(2.0, 2.0), mode="nearest-exact"),
            nn.Conv2d(channels, channels // 2, 3, padding=1),
        )
        self.temporal = temporal
        if temporal:
            self.time_conv = _CausalConv3d(channels, channels * 2, (3, 1, 1), (1, 0, 0))
        self._first = True

    def reset(self) -> None:
        self._first = True

    def _double_time(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        y = self.time_conv(x).reshape(b, 2, c, t, h, w)
        return torch.stack([y[:, 0], y[:, 1]], dim=3).reshape(b, c, 2 * t, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.temporal:
            if self._first:
                self._first = False
                head, rest = x[:, :, :1], x[:, :, 1:]
                x = torch.cat([head, self._double_time(rest)], dim=2) if rest.shape[2] else head
            else:
                x = self._double_time(x)
        b, c, t, h, w = x.shape
        y = self.resample(x.transpose(1, 2).reshape(b * t, c, h, w))
        return y.reshape(b, t, *y.shape[1:]).transpose(1, 2)


class _Decoder3d(nn.Module):
    def __init__(self, cfg: WanVAEDecoderConfig) -> None:
        super().__init__()
        mult = cfg.dim_mult
        dims = [cfg.dim * m for m in (mult[-1], *mult[::-1])]
        self.conv1 = _CausalConv3d(cfg.z_dim, dims[0], 3, (1, 1, 1))
        self.middle = nn.Sequential(_ResBlock(dims[0], dims[0]), _AttentionBlock(dims[0]), _ResBlock(dims[0], dims[0]))
        ups: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
            if i > 0:
                cin //= 2  # the previous stage's Resample halved the channels
            for _ in range(cfg.num_res_blocks + 1):
                ups.append(_ResBlock(cin, cout))
                cin = cout
            if i != len(mult) - 1:
                ups.append(_Resample(cout, temporal=cfg.temporal_upsample[i]))
        self.upsamples = nn.Sequential(*ups)
        self.head = nn.Sequential(_RMSNorm(dims[-1]), nn.SiLU(), _CausalConv3d(dims[-1], 3, 3, (1, 1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.upsamples(self.middle(self.conv1(x))))


class WanVAEDecoder(nn.Module):
    """Decoder half of the Wan2.1 VAE with streaming ``decode``; keys ``conv2.*`` and ``decoder.*``."""

    def __init__(self, cfg: WanVAEDecoderConfig) -> None:
        super().__init__()
        if len(cfg.temporal_upsample) != len(cfg.dim_mult) - 1:
            raise ValueError("temporal_upsample needs len(dim_mult) - 1 entries")
        self.cfg = cfg
        self.conv2 = _CausalConv3d(cfg.z_dim, cfg.z_dim, 1, (0, 0, 0))
        self.decoder = _Decoder3d(cfg)
        if cfg.z_dim == len(WAN_LATENT_MEAN):
            mean, std = torch.tensor(WAN_LATENT_MEAN), torch.tensor(WAN_LATENT_STD)
        else:
            mean, std = torch.zeros(cfg.z_dim), torch.ones(cfg.z_dim)
        self.register_buffer("latent_mean", mean.view(1, -1, 1, 1, 1), persistent=False)
        self.register_buffer("latent_std", std.view(1, -1, 1, 1, 1), persistent=False)
        self.time_factor = 2 ** sum(bool(u) for u in cfg.temporal_upsample)

    def reset(self) -> None:
        """Start a new stream (clears every conv cache and the first-latent marker)."""
        for m in self.modules():
            if isinstance(m, (_CausalConv3d, _Resample)):
                m.reset()

    def decode(self, latents: torch.Tensor, per_latent: bool = True) -> torch.Tensor:
        """Streaming decode of the next latents (B, z, T, h, w) (DiT space, normalised).

        Returns (B, 3, 1 + 4(T-1), 8h, 8w) on the first call of a stream, else (B, 3, 4T, 8h, 8w), in [-1, 1].
        ``per_latent`` runs one latent at a time (official, bounded memory); False runs the chunk in one pass
        (same result).
        """
        dtype = self.conv2.weight.dtype
        # Official order: divide by scale = 1/std (cast to the compute dtype), then add the mean.
        z = latents.to(dtype) / (1.0 / self.latent_std).to(dtype) + self.latent_mean.to(dtype)
        x = self.conv2(z)
        if per_latent:
            out = torch.cat([self.decoder(x[:, :, i : i + 1]) for i in range(x.shape[2])], dim=2)
        else:
            out = self.decoder(x)
        return out.clamp(-1, 1)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """Decode a whole clip from a fresh stream (resets the state before and after)."""
        self.reset()
        try:
            return self.decode(latents)
        finally:
            self.reset()
