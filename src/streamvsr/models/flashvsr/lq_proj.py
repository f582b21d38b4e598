"""FlashVSR LQ projector ("LR Proj-In", spec §1.6).

Turns the bicubic-upsampled LR video (target resolution, [-1, 1]) into one latent frame of DiT tokens per
4-frame clip: pixel-unshuffle (1, r, r) -> causal Conv3d (4,3,3)/(2,1,1) -> RMS -> SiLU -> causal Conv3d
-> RMS -> SiLU -> Linear.

Two cache semantics share the same parameters (select strictly by the weight version):

* v1 ``Buffer`` (``causal=False``): each conv's 2-frame front context is the *current* clip's own last two
  frames, so no state crosses clips.
* v1.1 ``Causal`` (``causal=True``): the front context is the previous clip's last two frames (replicate
  padding of frame 0 for the warm-up clip), so latent t sees clips t, t-1 and t-2.

A stream starts with a 1-frame warm-up call (returns ``None``); every later 4-frame clip yields ``h*w`` tokens.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from streamvsr.models.flashvsr.config import LQProjConfig

__all__ = ["LQProjector", "conv3d_time_folded", "pixel_unshuffle_2d"]

_CLIP = 4  # video frames per latent frame
_CTX = 2  # front context frames of each causal conv (kernel 4, stride 2)


def pixel_unshuffle_2d(x: torch.Tensor, r: int) -> torch.Tensor:
    """Space-to-depth per frame: (B, C, F, H, W) -> (B, C*r*r, F, H/r, W/r); channel = c*r*r + dy*r + dx."""
    b, c, f, h, w = x.shape
    x = x.reshape(b, c, f, h // r, r, w // r, r)
    x = x.permute(0, 1, 4, 6, 2, 3, 5)  # (B, C, r, r, F, h, w)
    return x.reshape(b, c * r * r, f, h // r, w // r)


class _RMSNorm(nn.Module):
    """x / ||x||_2 over channels * sqrt(C) * gamma (gamma shape (C, 1, 1, 1))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels, 1, 1, 1))
        self.scale = math.sqrt(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1, eps=1e-12) * self.scale * self.gamma


def conv3d_time_folded(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for a Conv3d without padding or dilation and with spatial stride 1, computed as one Conv2d.

    Each output frame's ``kt`` input frames are stacked into channels (channel = c * kt + dt, the order of
    the weight's flattened (C, kt) axes), so the 3-D convolution becomes a 2-D one over a batch of output
    frames. Same result; on Hopper cuDNN runs the 2-D case as a warp-group GEMM, the 3-D one with a strided
    time axis on an older kernel. x (B, C, F, H, W) -> (B, O, F', H - kh + 1, W - kw + 1).
    """
    if conv.padding != (0, 0, 0) or conv.dilation != (1, 1, 1) or conv.stride[1:] != (1, 1) or conv.groups != 1:
        raise ValueError("conv3d_time_folded takes a Conv3d with no padding, no dilation and spatial stride 1")
    kt, st = conv.kernel_size[0], conv.stride[0]
    B, C, _, H, W = x.shape
    win = x.unfold(2, kt, st)  # (B, C, n, H, W, kt)
    n = win.shape[2]
    win = win.permute(0, 2, 1, 5, 3, 4).reshape(B * n, C * kt, H, W)  # (B*n, C*kt, H, W)
    w = conv.weight.reshape(conv.out_channels, C * kt, *conv.kernel_size[1:])  # (O, C*kt, kh, kw)
    y = F.conv2d(win, w, conv.bias)  # (B*n, O, H', W')
    return y.reshape(B, n, *y.shape[1:]).transpose(1, 2)  # (B, O, n, H', W')


def _causal_conv(conv: nn.Conv3d, front: torch.Tensor, x: torch.Tensor, time_fold: bool = False) -> torch.Tensor:
    """Conv3d over [front || x] in time with replicate padding 1 in space; front is the 2-frame context.

    time_fold: compute it as one Conv2d (:func:`conv3d_time_folded`; same result)."""
    x = torch.cat([front, x], dim=2)
    x = F.pad(x, (1, 1, 1, 1, 0, 0), mode="replicate")
    return conv3d_time_folded(conv, x) if time_fold else conv(x)


class LQProjector(nn.Module):
    """LR video -> per-latent DiT tokens. Official keys: conv1, norm1.gamma, conv2, norm2.gamma, linear_layers.0."""

    def __init__(self, cfg: LQProjConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c0 = cfg.in_channels * cfg.unshuffle**2
        self.conv1 = nn.Conv3d(c0, cfg.hidden1, (4, 3, 3), stride=(2, 1, 1))
        self.norm1 = _RMSNorm(cfg.hidden1)
        self.conv2 = nn.Conv3d(cfg.hidden1, cfg.hidden2, (4, 3, 3), stride=(2, 1, 1))
        self.norm2 = _RMSNorm(cfg.hidden2)
        self.linear_layers = nn.ModuleList([nn.Linear(cfg.hidden2, cfg.out_dim)])
        self._cache1: torch.Tensor | None = None  # (B, C0, 2, h, w) last unshuffled frames (v1.1)
        self._cache2: torch.Tensor | None = None  # (B, hidden1, 2, h, w) last conv1 outputs after act (v1.1)
        self._started = False
        # Run the Conv3d layers as Conv2d over stacked time windows (same result; faster on Hopper GPUs,
        # see conv3d_time_folded). A runtime choice, not part of the architecture.
        self.time_fold = False

    # ------------------------------------------------------------------ helpers
    def reset(self) -> None:
        """Start a new video: drop the caches; the next ``step`` must be the 1-frame warm-up."""
        self._cache1 = None
        self._cache2 = None
        self._started = False

    def _check_frames(self, frames: torch.Tensor) -> None:
        r = self.cfg.unshuffle
        if frames.ndim != 5 or frames.shape[1] != self.cfg.in_channels:
            raise ValueError(f"expected (B, {self.cfg.in_channels}, F, H, W) frames, got {tuple(frames.shape)}")
        if frames.shape[-2] % r or frames.shape[-1] % r:
            raise ValueError(f"frame size {tuple(frames.shape[-2:])} is not a multiple of {r}")

    def _unshuffle(self, frames: torch.Tensor) -> torch.Tensor:
        self._check_frames(frames)
        return pixel_unshuffle_2d(frames.to(self.conv1.weight.dtype), self.cfg.unshuffle)

    def _conv(self, conv: nn.Conv3d, front: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return _causal_conv(conv, front, x, self.time_fold)

    def _act1(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(self.norm1(x))

    def _tokens(self, z: torch.Tensor) -> torch.Tensor:
        """(B, hidden2, T, h, w) -> (B, T*h*w, out_dim), tokens in (f, h, w) order."""
        z = F.silu(self.norm2(z))
        z = z.flatten(2).transpose(1, 2)  # (B, T*h*w, hidden2)
        return self.linear_layers[0](z)

    def _clips_buffer(self, u: torch.Tensor) -> torch.Tensor:
        """v1: independent clips. u (B, C0, 4k, h, w) -> conv2 output (B, hidden2, k, h, w)."""
        b, c, f, h, w = u.shape
        k = f // _CLIP
        x = u.reshape(b, c, k, _CLIP, h, w).transpose(1, 2).reshape(b * k, c, _CLIP, h, w)
        y = self._act1(self._conv(self.conv1, x[:, :, -_CTX:], x))  # (B*k, hidden1, 2, h, w)
        z = self._conv(self.conv2, y[:, :, -_CTX:], y)  # (B*k, hidden2, 1, h, w)
        return z.reshape(b, k, -1, h, w).transpose(1, 2)

    def _clips_causal(self, u: torch.Tensor) -> torch.Tensor:
        """v1.1: clips continue the stream. u (B, C0, 4k, h, w) -> (B, hidden2, k, h, w); updates caches."""
        assert self._cache1 is not None and self._cache2 is not None
        z, self._cache1, self._cache2 = self._causal_convs(u, self._cache1, self._cache2)
        return z

    def _causal_convs(
        self, u: torch.Tensor, cache1: torch.Tensor, cache2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Both causal convolutions of v1.1 as pure tensor math: u (B, C0, 4k, h, w) and the caches in,
        (conv2 output (B, hidden2, k, h, w), new cache1, new cache2) out."""
        y = self._act1(self._conv(self.conv1, cache1, u))  # (B, hidden1, 2k, h, w)
        z = self._conv(self.conv2, cache2, y)  # (B, hidden2, k, h, w)
        return z, u[:, :, -_CTX:].clone(), y[:, :, -_CTX:].clone()

    def _steady(
        self, frames: torch.Tensor, cache1: torch.Tensor, cache2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A later call of a causal stream as pure tensor math (a runtime may compile it: no Python state):
        frames (B, 3, 4k, H, W) and the caches in, (tokens (B, k*h*w, out_dim), new cache1, new cache2) out."""
        u = pixel_unshuffle_2d(frames.to(self.conv1.weight.dtype), self.cfg.unshuffle)
        z, cache1, cache2 = self._causal_convs(u, cache1, cache2)
        return self._tokens(z), cache1, cache2

    def _warmup(self, u0: torch.Tensor) -> None:
        """The 1-frame warm-up: [f0]*4 through conv1 with replicate time padding; fills both caches."""
        x = u0.expand(-1, -1, _CLIP, -1, -1)
        y = self._act1(self._conv(self.conv1, u0.expand(-1, -1, _CTX, -1, -1), x))
        self._cache1 = x[:, :, -_CTX:].clone()
        self._cache2 = y[:, :, -_CTX:].clone()

    # ------------------------------------------------------------------ API
    def step(self, frames: torch.Tensor) -> torch.Tensor | None:
        """Streaming call. frames (B, 3, F, H, W) in [-1, 1].

        The first call of a stream takes 1 + 4k frames (frame 0 is the warm-up; k = 0 is the official
        protocol and returns ``None``); later calls take 4k frames. Returns (B, k*h*w, out_dim) tokens.
        """
        n = frames.shape[2]
        if not self._started:
            if n % _CLIP != 1:
                raise ValueError(f"the first projector call takes 1 + 4k frames, got {n}")
            u = self._unshuffle(frames)
            self._warmup(u[:, :, :1])
            self._started = True
            u = u[:, :, 1:]
        else:
            if n % _CLIP:
                raise ValueError(f"projector calls after the first take a multiple of 4 frames, got {n}")
            if self.cfg.causal and n:
                self._check_frames(frames)
                assert self._cache1 is not None and self._cache2 is not None
                tokens, self._cache1, self._cache2 = self._steady(frames, self._cache1, self._cache2)
                return tokens
            u = self._unshuffle(frames)
        if u.shape[2] == 0:
            return None
        z = self._clips_causal(u) if self.cfg.causal else self._clips_buffer(u)
        return self._tokens(z)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Whole video at once (differentiable), equal to the streaming path from a reset state.

        video (B, 3, 1 + 4T, H, W) in [-1, 1] (frame 0 is the warm-up frame) -> (B, T*h*w, out_dim),
        where latent t gets frames 4t+1 .. 4t+4. Does not touch the streaming state.
        """
        n = video.shape[2]
        if n % _CLIP != 1 or n < 1 + _CLIP:
            raise ValueError(f"forward takes 1 + 4T frames with T >= 1, got {n}")
        u = self._unshuffle(video)
        if not self.cfg.causal:
            return self._tokens(self._clips_buffer(u[:, :, 1:]))
        u0 = u[:, :, :1]
        # Warm-up clip [f0]*4 followed by the clips; conv front padding replicates f0 (2 frames).
        x = torch.cat([u0.expand(-1, -1, _CLIP, -1, -1), u[:, :, 1:]], dim=2)
        y = self._act1(self._conv(self.conv1, u0.expand(-1, -1, _CTX, -1, -1), x))  # (B, C1, 2+2T, h, w)
        z = self._conv(self.conv2, y[:, :, :1].expand(-1, -1, _CTX, -1, -1), y)  # (B, C2, 1+T, h, w)
        return self._tokens(z[:, :, 1:])  # drop the warm-up output
