"""Our causal latent video autoencoder (training stage 0).

It replaces the Wan2.1 VAE (which we cannot download) with a small TAEHV-style network that keeps the
official frame <-> latent bookkeeping (spec flashvsr.md §1.3, §1.11):

* spatial factor 8, temporal factor 4, 16 latent channels (all config-driven);
* causal: latent 0 <-> frame 0, latent t >= 1 <-> frames 4t-3 .. 4t; a clip of F = 1 + 4k frames gives
  T = 1 + k latents, and T latents decode to 1 + 4(T-1) frames.

How the causality is built: frame 0 is repeated 3 times in front of the clip, so the padded clip has 4T frames
and latent t sees padded frames 4t .. 4t+3 (= frames 4t-3 .. 4t, or [f0]*4 for t = 0). Temporal pooling
(``TPool``) only merges frames inside one group of 4, and the temporal mixing (``MemBlock``) only looks one
step back, so latent t depends on frames <= 4t. The decoder mirrors it: latent t grows into 4 frames
(``TGrow``), ``MemBlock`` looks back only, and the first 3 frames (the repeats of frame 0) are trimmed, as the
TCDecoder does (spec §1.11.2).

Latents are regularised with a small KL term (``variational=True``) and normalised with per-channel
``latent_mean`` / ``latent_std`` buffers measured after training, so that ``encode`` gives roughly N(0, 1)
latents for the diffusion model and ``decode`` takes them back.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

__all__ = [
    "AE_SIZES",
    "AutoencoderConfig",
    "VideoAutoencoder",
    "get_ae_size",
    "latent_to_frames",
    "num_frames",
    "num_latents",
]


# ---------------------------------------------------------------------------------------------------------
# Config and size table
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AutoencoderConfig:
    """Causal video autoencoder.

    in_channels:      image channels (3, RGB in [-1, 1]).
    latent_channels:  channels of the latent (16, as Wan2.1).
    spatial_factor:   pixels per latent cell per side; a power of two >= 2 (8).
    temporal_factor:  frames per latent after latent 0; a power of two (4).
    enc_channels:     encoder width per spatial level, highest resolution (H/2) first; one level per factor 2.
    enc_blocks:       MemBlocks per encoder level.
    dec_channels:     decoder width per level, lowest resolution (H/8) first.
    dec_blocks:       MemBlocks per decoder level.
    variational:      encoder predicts mean and log-variance (KL-regularised latents) instead of a point.
    linear_shortcut:  add a learned linear patch path (4 frames x s x s pixels <-> one latent cell) around
                      the encoder and the decoder; the deep path then only learns the residual. It makes
                      training start much faster (cf. DC-AE's residual autoencoding) and costs ~100 MAC/pixel.
    """

    in_channels: int = 3
    latent_channels: int = 16
    spatial_factor: int = 8
    temporal_factor: int = 4
    enc_channels: tuple[int, ...] = (32, 64, 128)
    enc_blocks: tuple[int, ...] = (1, 1, 2)
    dec_channels: tuple[int, ...] = (192, 96, 48)
    dec_blocks: tuple[int, ...] = (2, 2, 1)
    variational: bool = True
    linear_shortcut: bool = True

    def __post_init__(self) -> None:
        s, t = self.spatial_factor, self.temporal_factor
        if s < 2 or s & (s - 1):
            raise ValueError(f"spatial_factor must be a power of two >= 2, got {s}")
        if t < 1 or t & (t - 1):
            raise ValueError(f"temporal_factor must be a power of two, got {t}")
        n = self.levels
        for name in ("enc_channels", "enc_blocks", "dec_channels", "dec_blocks"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} needs {n} entries (one per spatial level), got {getattr(self, name)}")
        if self.temporal_levels > n:
            raise ValueError(f"temporal_factor {t} needs more spatial levels than spatial_factor {s} gives")

    @property
    def levels(self) -> int:
        """Number of spatial levels (each halves the resolution): log2(spatial_factor)."""
        return int(math.log2(self.spatial_factor))

    @property
    def temporal_levels(self) -> int:
        """Number of levels that halve the frame rate: log2(temporal_factor)."""
        return int(math.log2(self.temporal_factor))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AutoencoderConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown AutoencoderConfig fields: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


AE_SIZES: dict[str, AutoencoderConfig] = {
    # Unit tests only.
    "tiny": AutoencoderConfig(
        enc_channels=(8, 8, 16), enc_blocks=(1, 1, 1), dec_channels=(16, 8, 8), dec_blocks=(1, 1, 1)
    ),
    # Default: 1.5 M encoder + 3.7 M decoder parameters; trains on one GPU.
    "small": AutoencoderConfig(),
    # For longer runs: 6.6 M + 9.7 M parameters.
    "base": AutoencoderConfig(
        enc_channels=(64, 128, 256), enc_blocks=(1, 2, 2), dec_channels=(256, 128, 64), dec_blocks=(3, 3, 2)
    ),
}


def get_ae_size(name: str) -> AutoencoderConfig:
    """Look up an autoencoder size by name (``KeyError`` lists the known names)."""
    try:
        return AE_SIZES[name]
    except KeyError:
        raise KeyError(f"unknown autoencoder size {name!r}; known: {sorted(AE_SIZES)}") from None


# ---------------------------------------------------------------------------------------------------------
# Frame bookkeeping (pure functions; spec §1.3)
# ---------------------------------------------------------------------------------------------------------


def num_latents(frames: int, temporal_factor: int = 4) -> int:
    """Latent frames for a clip of ``frames`` = 1 + temporal_factor * k frames: 1 + k."""
    if frames < 1 or (frames - 1) % temporal_factor:
        raise ValueError(f"frame count must be 1 + {temporal_factor}k, got {frames}")
    return 1 + (frames - 1) // temporal_factor


def num_frames(latents: int, temporal_factor: int = 4) -> int:
    """Frames decoded from ``latents`` latent frames: 1 + temporal_factor * (latents - 1)."""
    if latents < 1:
        raise ValueError(f"need at least one latent frame, got {latents}")
    return 1 + temporal_factor * (latents - 1)


def latent_to_frames(t: int, temporal_factor: int = 4) -> range:
    """Frame indices that latent ``t`` covers: [0] for t = 0, else 4t-3 .. 4t."""
    if t < 0:
        raise ValueError(f"latent index must be >= 0, got {t}")
    if t == 0:
        return range(0, 1)
    return range(temporal_factor * (t - 1) + 1, temporal_factor * t + 1)


# ---------------------------------------------------------------------------------------------------------
# Building blocks. Activations are (B*T, C, H, W) with time T as a separate int (frames per sample).
# ---------------------------------------------------------------------------------------------------------


def _conv(c_in: int, c_out: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=bias)


class MemBlock(nn.Module):
    """Residual block with one step of causal memory (TAEHV idea).

    out_t = ReLU(conv3(ReLU(conv2(ReLU(conv1([x_t, x_{t-1}]))))) + x_t), with x_{-1} = 0.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels
        self.conv = nn.Sequential(_conv(2 * c, c), nn.ReLU(), _conv(c, c), nn.ReLU(), _conv(c, c))
        self.act = nn.ReLU()

    def forward(self, x: Tensor, t: int) -> Tensor:
        n, c, h, w = x.shape
        xt = x.reshape(n // t, t, c, h, w)  # (B, T, C, H, W)
        past = torch.cat([torch.zeros_like(xt[:, :1]), xt[:, :-1]], dim=1).reshape(n, c, h, w)
        return self.act(self.conv(torch.cat([x, past], dim=1)) + x)


class TPool(nn.Module):
    """Merge ``stride`` consecutive frames into one: 1x1 conv over their concatenated channels."""

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(channels * stride, channels, 1, bias=False)
        with torch.no_grad():  # start as the frame average
            eye = torch.eye(channels)[:, :, None, None] / stride
            self.conv.weight.copy_(torch.cat([eye] * stride, dim=1))

    def forward(self, x: Tensor, t: int) -> Tensor:
        n, c, h, w = x.shape
        return self.conv(x.reshape(n // self.stride, self.stride * c, h, w))  # (B*T/s, C, H, W)


class TGrow(nn.Module):
    """Split one frame into ``stride`` consecutive frames: 1x1 conv C -> stride*C (first C channels first)."""

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(channels, channels * stride, 1, bias=False)
        with torch.no_grad():  # start as frame repetition
            eye = torch.eye(channels)[:, :, None, None]
            self.conv.weight.copy_(torch.cat([eye] * stride, dim=0))

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        return self.conv(x).reshape(n * self.stride, c, h, w)  # (B*T*s, C, H, W)


class _Level(nn.Module):
    """One resolution level: pre layers (per frame), optional time pool/grow, then MemBlocks."""

    def __init__(
        self,
        pre: nn.Module,
        blocks: int,
        channels: int,
        pool: int = 1,
        grow: int = 1,
        grow_channels: int = 0,
    ) -> None:
        super().__init__()
        self.grow = TGrow(grow_channels, grow) if grow > 1 else None
        self.pre = pre
        self.pool = TPool(channels, pool) if pool > 1 else None
        self.blocks = nn.ModuleList(MemBlock(channels) for _ in range(blocks))

    def forward(self, x: Tensor, t: int) -> tuple[Tensor, int]:
        if self.grow is not None:
            x, t = self.grow(x), t * self.grow.stride
        x = self.pre(x)
        if self.pool is not None:
            x, t = self.pool(x, t), t // self.pool.stride
        for block in self.blocks:
            x = block(x, t)
        return x, t


class Encoder(nn.Module):
    """(B*4T, 3, H, W) frames -> (B*T, 2*latent or latent, H/s, W/s). Time pools at the first levels."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        ch = cfg.enc_channels
        self.levels = nn.ModuleList()
        for i in range(cfg.levels):
            if i == 0:  # pixel-unshuffle 2 then a 3x3 conv at H/2: cheap first level
                pre = nn.Sequential(nn.PixelUnshuffle(2), _conv(4 * cfg.in_channels, ch[0]), nn.ReLU())
            else:
                pre = nn.Sequential(_conv(ch[i - 1], ch[i], stride=2, bias=False), nn.ReLU())
            pool = 2 if i < cfg.temporal_levels else 1
            self.levels.append(_Level(pre, cfg.enc_blocks[i], ch[i], pool=pool))
        out = 2 * cfg.latent_channels if cfg.variational else cfg.latent_channels
        self.head = _conv(ch[-1], out)
        s, tf = cfg.spatial_factor, cfg.temporal_factor
        self.shortcut = nn.Conv2d(tf * cfg.in_channels, out, s, stride=s) if cfg.linear_shortcut else None
        self.temporal_factor = tf
        self.grad_checkpointing = False

    def forward(self, x: Tensor, t: int) -> Tensor:
        inp = x
        for level in self.levels:
            x, t = _run_level(level, x, t, self.grad_checkpointing and self.training)
        out = self.head(x)
        if self.shortcut is not None:  # the frames of one group side by side in channels: (B*T, tf*3, H, W)
            n, c, h, w = inp.shape
            out = out + self.shortcut(inp.reshape(n // self.temporal_factor, self.temporal_factor * c, h, w))
        return out


class Decoder(nn.Module):
    """(B*T, latent, h, w) -> (B*4T, 3, 8h, 8w). Time grows at the last levels (mirror of the encoder)."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        ch = cfg.dec_channels
        n = cfg.levels
        self.levels = nn.ModuleList()
        for i in range(n):
            if i == 0:
                pre = nn.Sequential(_conv(cfg.latent_channels, ch[0]), nn.ReLU())
                self.levels.append(_Level(pre, cfg.dec_blocks[0], ch[0]))
                continue
            # Grow time (cheap, at the low resolution) before the x2 upsample and the 3x3 conv.
            grow = 2 if i >= n - cfg.temporal_levels else 1
            pre = nn.Sequential(nn.Upsample(scale_factor=2.0, mode="nearest"), _conv(ch[i - 1], ch[i]), nn.ReLU())
            self.levels.append(_Level(pre, cfg.dec_blocks[i], ch[i], grow=grow, grow_channels=ch[i - 1]))
        self.head = nn.Sequential(_conv(ch[-1], 4 * cfg.in_channels), nn.PixelShuffle(2))
        s, tf = cfg.spatial_factor, cfg.temporal_factor
        self.shortcut = (
            nn.ConvTranspose2d(cfg.latent_channels, tf * cfg.in_channels, s, stride=s) if cfg.linear_shortcut else None
        )
        self.temporal_factor = tf
        self.grad_checkpointing = False

    def forward(self, x: Tensor, t: int) -> Tensor:
        z = x
        for level in self.levels:
            x, t = _run_level(level, x, t, self.grad_checkpointing and self.training)
        out = self.head(x)  # (B*tf*T, 3, H, W)
        if self.shortcut is not None:  # one latent cell -> its tf frames x s x s pixels
            short = self.shortcut(z)  # (B*T, tf*3, H, W)
            n, c, h, w = short.shape
            out = out + short.reshape(n * self.temporal_factor, c // self.temporal_factor, h, w)
        return out


def _run_level(level: _Level, x: Tensor, t: int, use_checkpoint: bool) -> tuple[Tensor, int]:
    if not use_checkpoint:
        return level(x, t)
    t_out = [t]

    def fn(inp: Tensor) -> Tensor:
        out, t_out[0] = level(inp, t)
        return out

    return checkpoint(fn, x, use_reentrant=False), t_out[0]


# ---------------------------------------------------------------------------------------------------------
# The autoencoder
# ---------------------------------------------------------------------------------------------------------


class VideoAutoencoder(nn.Module):
    """Causal video autoencoder with Wan2.1 frame bookkeeping.

    Tensor contract: videos are (B, 3, F, H, W) RGB in [-1, 1] with F = 1 + 4k and H, W multiples of 8;
    latents are (B, 16, 1 + k, H/8, W/8), normalised by ``latent_mean`` / ``latent_std``.
    Images are clips with F = 1.
    """

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.register_buffer("latent_mean", torch.zeros(cfg.latent_channels))
        self.register_buffer("latent_std", torch.ones(cfg.latent_channels))

    # --- helpers -------------------------------------------------------------------------------------

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each level's activations in the backward pass (saves memory in training)."""
        self.encoder.grad_checkpointing = enabled
        self.decoder.grad_checkpointing = enabled

    @torch.no_grad()
    def set_latent_stats(self, mean: Tensor, std: Tensor) -> None:
        """Store per-channel statistics of raw latents; ``encode`` then returns (z - mean) / std."""
        self.latent_mean.copy_(mean.reshape(-1))
        self.latent_std.copy_(std.reshape(-1).clamp_min(1e-6))

    def normalize(self, z: Tensor) -> Tensor:
        """Raw latents (B, C, T, h, w) -> normalised latents."""
        shape = (1, -1, 1, 1, 1)
        return (z - self.latent_mean.view(shape).to(z.dtype)) / self.latent_std.view(shape).to(z.dtype)

    def denormalize(self, z: Tensor) -> Tensor:
        """Normalised latents (B, C, T, h, w) -> raw latents."""
        shape = (1, -1, 1, 1, 1)
        return z * self.latent_std.view(shape).to(z.dtype) + self.latent_mean.view(shape).to(z.dtype)

    def _check_video(self, video: Tensor) -> None:
        if video.ndim != 5 or video.shape[1] != self.cfg.in_channels:
            raise ValueError(f"video must be (B, {self.cfg.in_channels}, F, H, W), got {tuple(video.shape)}")
        num_latents(video.shape[2], self.cfg.temporal_factor)
        s = self.cfg.spatial_factor
        if video.shape[3] % s or video.shape[4] % s:
            raise ValueError(f"height and width must be multiples of {s}, got {tuple(video.shape[3:])}")

    # --- encoder -------------------------------------------------------------------------------------

    def encode_dist(self, video: Tensor) -> tuple[Tensor, Tensor | None]:
        """Raw posterior: (mean, logvar), each (B, C, T, h, w); logvar is None when not variational."""
        self._check_video(video)
        b, _, f, h, w = video.shape
        tf = self.cfg.temporal_factor
        frames = video.transpose(1, 2)  # (B, F, 3, H, W)
        # Repeat frame 0 so that every latent covers exactly tf frames (latent 0 = [f0] * tf).
        frames = torch.cat([frames[:, :1].expand(b, tf - 1, -1, -1, -1), frames], dim=1)  # (B, tf*T, 3, H, W)
        t = frames.shape[1]
        out = self.encoder(frames.reshape(b * t, -1, h, w), t)  # (B*T, C', h, w)
        n_lat = t // tf
        out = out.reshape(b, n_lat, *out.shape[1:]).transpose(1, 2)  # (B, C', T, h, w)
        if not self.cfg.variational:
            return out, None
        mean, logvar = out.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def encode(self, video: Tensor, sample: bool = False, generator: torch.Generator | None = None) -> Tensor:
        """(B, 3, 1+4k, H, W) in [-1, 1] -> normalised latents (B, 16, 1+k, H/8, W/8).

        sample=True draws from the posterior (training); the default returns its mean.
        """
        mean, logvar = self.encode_dist(video)
        z = mean
        if sample and logvar is not None:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            z = mean + torch.exp(0.5 * logvar) * noise
        return self.normalize(z)

    # --- decoder -------------------------------------------------------------------------------------

    def decode_raw(self, z: Tensor) -> Tensor:
        """Raw latents (B, C, T, h, w) -> unclamped video (B, 3, 1 + 4(T-1), 8h, 8w)."""
        if z.ndim != 5 or z.shape[1] != self.cfg.latent_channels:
            raise ValueError(f"latents must be (B, {self.cfg.latent_channels}, T, h, w), got {tuple(z.shape)}")
        b, c, t, h, w = z.shape
        tf = self.cfg.temporal_factor
        x = self.decoder(z.transpose(1, 2).reshape(b * t, c, h, w), t)  # (B*tf*T, 3, H, W)
        x = x.reshape(b, tf * t, *x.shape[1:])[:, tf - 1 :]  # trim the repeats of frame 0
        return x.transpose(1, 2)  # (B, 3, F, H, W)

    def decode(self, latents: Tensor, clamp: bool = True) -> Tensor:
        """Normalised latents (B, 16, T, h, w) -> video (B, 3, 1 + 4(T-1), 8h, 8w), clamped to [-1, 1]."""
        x = self.decode_raw(self.denormalize(latents))
        return x.clamp(-1.0, 1.0) if clamp else x

    def forward(self, video: Tensor, sample: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
        """Training pass: (unclamped reconstruction, raw posterior mean, logvar or None)."""
        mean, logvar = self.encode_dist(video)
        z = mean
        if sample and logvar is not None:
            z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        return self.decode_raw(z), mean, logvar
