"""FlashVSR Tiny Conditional Decoder (TCDecoder, spec §1.11.2).

A decoder-only TAEHV derivative: latents (no VAE un-normalisation) concatenated with a pixel-unshuffled
LR condition -> 3 stages of [MemBlock x3, Upsample x2, TGrow, Conv2d] -> RGB in about [0, 1], mapped to
[-1, 1] by x*2-1 (not clamped). With ``lq_residual`` (ours) the output is instead the condition
frame plus the stack's output, and the last convolution starts at zero. The upsampling is nearest (official)
or, with ``cfg.upsample="bilinear"`` (ours), bilinear.

Layer index N is the state-dict index ``decoder.N`` of the official checkpoint. A MemBlock's memory is
its own input at the previous time step (at its temporal rate); it is zero at the start of a stream. The
first call of a stream trims the first ``prod(time_strides) - 1`` (= 3) output frames.

Condition alignment: latent t pairs with LR frames 4t-3 .. 4t, latent 0 with [f0]*4; i.e. prepend
3 copies of frame 0 to the first chunk (``make_tc_condition``).
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from streamvsr.models.flashvsr.config import TCDecoderConfig
from streamvsr.models.flashvsr.fused import conv2d_relu, conv3x3_by_taps, nearest2x_conv3x3

__all__ = ["TCDecoder", "make_tc_condition", "tc_condition_unshuffle"]


def make_tc_condition(lr_frames: torch.Tensor, first: bool = True, frames_per_latent: int = 4) -> torch.Tensor:
    """Align LR frames with latents. lr_frames (B, 3, N, H, W) -> (B, 3, 4T, H, W).

    On the first call of a stream, copies of frame 0 are prepended until N is a multiple of
    ``frames_per_latent`` (3 copies for the official 4T-3 frames); later calls must already be aligned.
    """
    n = lr_frames.shape[2]
    pad = (-n) % frames_per_latent
    if pad and not first:
        raise ValueError(f"condition chunks after the first need a multiple of {frames_per_latent} frames, got {n}")
    if pad:
        lr_frames = torch.cat([lr_frames[:, :, :1].expand(-1, -1, pad, -1, -1), lr_frames], dim=2)
    return lr_frames


def tc_condition_unshuffle(frames: torch.Tensor, ft: int = 4, fs: int = 8) -> torch.Tensor:
    """PixelUnshuffle3d: (B, C, ft*T, fs*h, fs*w) -> (B, C*ft*fs*fs, T, h, w), channel c*ft*fs*fs + dt*fs*fs +
    dy*fs + dx."""
    b, c, n, hh, ww = frames.shape
    t, h, w = n // ft, hh // fs, ww // fs
    x = frames.reshape(b, c, t, ft, h, fs, w, fs)
    x = x.permute(0, 1, 3, 5, 7, 2, 4, 6)  # (B, C, ft, fs, fs, T, h, w)
    return x.reshape(b, c * ft * fs * fs, t, h, w)


def _conv_relu(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """relu(conv(x)) as one op (:func:`~streamvsr.models.flashvsr.fused.conv2d_relu`; the decoder's convolutions have
    stride 1). The input goes channels-last: cuDNN's NHWC kernels, and a compiled graph writes the producer in that
    layout (with NCHW input cuDNN converted layouts and the decoder was slower; docs/performance.md)."""
    return conv2d_relu(x.contiguous(memory_format=torch.channels_last), conv.weight, conv.bias, conv.padding[0])


class _Clamp(nn.Module):
    """Soft clamp 3*tanh(x/3)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class _IdentityConv2d(nn.Conv2d):
    """3x3 conv C->C without bias, Dirac-initialised (identity at init)."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, channels, 3, padding=1, bias=False)
        with torch.no_grad():
            nn.init.dirac_(self.weight)


class _MemBlock(nn.Module):
    """out = ReLU(conv3(ReLU(conv2(ReLU(conv1([x, past]))))) + x)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels
        self.conv = nn.Sequential(
            nn.Conv2d(2 * c, c, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1),
        )

    def forward(self, x: torch.Tensor, past: torch.Tensor, fused: bool = False) -> torch.Tensor:
        """fused: the first two convolutions with their ReLUs as :func:`~.fused.conv2d_relu` (inference only)."""
        h = torch.cat([x, past], dim=1)
        if not fused:
            return F.relu(self.conv(h) + x)
        for conv in (self.conv[0], self.conv[2]):
            h = _conv_relu(conv, h)
        return F.relu(self.conv[4](h) + x)


class _TGrow(nn.Module):
    """1x1 conv C -> s*C whose output channels are s consecutive frames (channels [0:C] first)."""

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(channels, channels * stride, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, C, H, W) -> (B, T*s, C, H, W)."""
        b, t, c, h, w = x.shape
        y = self.conv(x.flatten(0, 1))  # (B*T, s*C, H, W)
        return y.reshape(b, t * self.stride, c, h, w)


class TCDecoder(nn.Module):
    """Tiny conditional decoder with streaming ``decode`` and a stateless differentiable ``forward``."""

    def __init__(self, cfg: TCDecoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch = cfg.channels
        stages = len(ch) - 1
        if len(cfg.time_strides) != stages:
            raise ValueError(f"time_strides {cfg.time_strides} needs {stages} entries for channels {ch}")
        self.time_factor = math.prod(cfg.time_strides)  # video frames per latent
        self.space_factor = 2**stages  # pixels per latent cell
        expected = 3 * self.time_factor * self.space_factor**2
        if cfg.cond_channels not in (0, expected):
            raise ValueError(f"cond_channels must be 0 or {expected} for this decoder, got {cfg.cond_channels}")
        self.frames_to_trim = self.time_factor - 1
        if cfg.upsample not in ("nearest", "bilinear"):
            raise ValueError(f"upsample must be nearest or bilinear, got {cfg.upsample!r}")
        layers: list[nn.Module] = [
            _Clamp(),
            nn.Conv2d(cfg.cond_channels + cfg.latent_channels, ch[0], 3, padding=1),
            nn.ReLU(),
            _IdentityConv2d(ch[0]),
            nn.ReLU(),
        ]
        for i in range(stages):
            layers += [_MemBlock(ch[i]) for _ in range(3)]
            layers += [
                nn.Upsample(scale_factor=2, mode=cfg.upsample),
                _TGrow(ch[i], cfg.time_strides[i]),
                nn.Conv2d(ch[i], ch[i + 1], 3, padding=1, bias=False),
            ]
        layers += [nn.ReLU(), _IdentityConv2d(ch[-1]), nn.ReLU(), nn.Conv2d(ch[-1], 3, 3, padding=1)]
        self.decoder = nn.Sequential(*layers)
        if cfg.lq_residual:
            if not cfg.cond_channels:
                raise ValueError("lq_residual needs the LR condition (cond_channels > 0)")
            nn.init.zeros_(self.decoder[-1].weight)
            nn.init.zeros_(self.decoder[-1].bias)
        self._mem: dict[int, torch.Tensor] = {}
        self._started = False
        # run each TGrow before the upsampling in front of it (same function, a quarter of the TGrow work and of
        # its frame reshuffle); False runs the layers in checkpoint order (the reference)
        self.grow_first = True
        # frames per slice of the per-frame tail (the last upsampling and the full-resolution convolutions):
        # None runs all frames at once; a small number bounds the full-resolution activations (see _run)
        self.tail_frames: int | None = None
        # inference-only kernel choices for the stack's top-level layers (the same function; off = the reference):
        # a convolution followed by a ReLU as one op with the ReLU in its epilogue (fused.conv2d_relu), and the last
        # convolution (3 outputs) as one GEMM plus a shifted sum (fused.conv3x3_by_taps)
        self.fused_conv_relu = False
        self.fused_memblocks = False  # the same for the first two convolutions of every MemBlock
        self.out_by_taps = False
        # every nearest x2 upsampling with the 3x3 convolution after it (and its ReLU) as one sub-pixel convolution
        # of the smaller input (fused.nearest2x_conv3x3: 4/9 of the multiply-adds, no upsampled tensor)
        self.subpixel_upsample = False

    def reset(self) -> None:
        """Start a new stream: clear MemBlock memories; the next ``decode`` trims again."""
        self._mem = {}
        self._started = False

    # ------------------------------------------------------------------ core
    def _input(self, latents: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """latents (B, 16, T, h, w) + aligned cond frames (B, 3, 4T, H, W) -> (B, T, C_in, h, w)."""
        b, c, t, h, w = latents.shape
        if c != self.cfg.latent_channels:
            raise ValueError(f"expected {self.cfg.latent_channels} latent channels, got {c}")
        dtype = self.decoder[1].weight.dtype
        x = latents.to(dtype)
        if self.cfg.cond_channels:
            if cond is None:
                raise ValueError("this TCDecoder needs the LR condition frames")
            want = (b, 3, t * self.time_factor, h * self.space_factor, w * self.space_factor)
            if tuple(cond.shape) != want:
                raise ValueError(f"condition frames must be {want}, got {tuple(cond.shape)}")
            cnd = tc_condition_unshuffle(cond.to(dtype), self.time_factor, self.space_factor)
            x = torch.cat([cnd, x], dim=1)  # [cond || latent]
        return x.transpose(1, 2)

    def _run(
        self, x: torch.Tensor, mem: dict[int, torch.Tensor] | None
    ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Run the layer stack on x (B, T, C, h, w); mem maps MemBlock index -> previous input (B, C, H, W).

        With ``tail_frames`` set, the layers after the last TGrow (all per-frame: the last upsampling and the
        full-resolution convolutions) run on that many frames at a time, which bounds the full-resolution
        activations (the same function, frame for frame)."""
        layers = list(self.decoder)
        last = max(i for i, layer in enumerate(layers) if isinstance(layer, _TGrow))
        head, tail = list(range(last + 1)), list(range(last + 1, len(layers)))
        if self.grow_first and isinstance(layers[last - 1], nn.Upsample):
            # the last TGrow runs in the head, then the upsampling in front of it starts the tail
            head, tail = head[:-2] + [last], [last - 1, *tail]
        x, new_mem = self._layers(x, mem, layers, head)
        n = self.tail_frames
        if not n or n >= x.shape[1]:
            return self._layers(x, None, layers, tail)[0], new_mem
        parts = [self._layers(x[:, a : a + n], None, layers, tail)[0] for a in range(0, x.shape[1], n)]
        return torch.cat(parts, dim=1), new_mem

    def _layers(
        self, x: torch.Tensor, mem: dict[int, torch.Tensor] | None, layers: list[nn.Module], order: list[int]
    ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """The layers of the stack at the indices ``order``, in that order, on x (B, T, C, h, w); returns x and
        the new memories. An upsampling directly followed (in ``order``) by a TGrow runs after it (grow_first)."""
        new_mem: dict[int, torch.Tensor] = {}
        skip: set[int] = set()
        infer = not torch.is_grad_enabled()  # the fused kernels have no backward
        for k, i in enumerate(order):
            layer = layers[i]
            if i in skip:
                continue
            nxt = order[k + 1] if k + 1 < len(order) else None
            nxt_layer = layers[nxt] if nxt is not None else None
            upconv = self._subpixel_run(layers, order, k) if infer and self.subpixel_upsample else None
            if upconv is not None:
                # [TGrow,] upsampling, 3x3 convolution [, ReLU] -> [TGrow,] one sub-pixel convolution
                grow, conv, relu, used = upconv
                if grow is not None:
                    x = grow(x)
                b, t = x.shape[:2]
                y = nearest2x_conv3x3(x.flatten(0, 1), conv.weight, conv.bias, relu)
                x = y.reshape(b, t, *y.shape[1:])
                skip.update(used)
            elif self.grow_first and isinstance(layer, nn.Upsample) and isinstance(nxt_layer, _TGrow):
                # TGrow (a 1x1 convolution without bias) commutes with the x2 upsampling (nearest or bilinear:
                # both linear, per channel): growing the frames first does its work on a quarter of the pixels.
                x = nxt_layer(x)
                b, t = x.shape[:2]
                y = layer(x.flatten(0, 1))
                x = y.reshape(b, t, *y.shape[1:])
                skip.add(nxt)  # type: ignore[arg-type]
            elif isinstance(layer, _MemBlock):
                prev = mem.get(i) if mem else None
                if prev is None:
                    prev = torch.zeros_like(x[:, 0])
                past = torch.cat([prev.unsqueeze(1), x[:, :-1]], dim=1)  # (B, T, C, H, W)
                new_mem[i] = x[:, -1]
                y = layer(x.flatten(0, 1), past.flatten(0, 1), infer and self.fused_memblocks)
                x = y.reshape(x.shape)
            elif isinstance(layer, _TGrow):
                x = layer(x)
            else:  # a per-frame layer: frames folded into the batch
                fn = layer
                if infer and self.fused_conv_relu and isinstance(layer, nn.Conv2d) and isinstance(nxt_layer, nn.ReLU):
                    fn = partial(_conv_relu, layer)
                    skip.add(nxt)  # type: ignore[arg-type]
                elif infer and self.out_by_taps and i == len(layers) - 1:
                    fn = partial(conv3x3_by_taps, weight=layer.weight, bias=layer.bias)
                b, t = x.shape[:2]
                y = fn(x.flatten(0, 1))
                x = y.reshape(b, t, *y.shape[1:])
        return x, new_mem

    def _subpixel_run(
        self, layers: list[nn.Module], order: list[int], k: int
    ) -> tuple[_TGrow | None, nn.Conv2d, bool, list[int]] | None:
        """Where ``order[k]`` starts a nearest x2 upsampling, a 3x3 convolution (stride 1, padding 1) and maybe a
        ReLU, with a TGrow between upsampling and convolution when TGrows run first (``grow_first``): (that TGrow
        or None, the convolution, whether a ReLU follows, the indices the sub-pixel convolution replaces after
        ``order[k]``). Else None."""
        up = layers[order[k]]
        if not (isinstance(up, nn.Upsample) and up.mode == "nearest" and up.scale_factor in (2, 2.0)):
            return None
        rest = order[k + 1 :]
        used: list[int] = []  # the indices after order[k] that the sub-pixel run replaces
        grow = None
        if rest and isinstance(layers[rest[0]], _TGrow):
            if not self.grow_first:
                return None
            grow = layers[rest[0]]
            used.append(rest.pop(0))
        conv = layers[rest[0]] if rest else None
        if not (
            isinstance(conv, nn.Conv2d)
            and conv.kernel_size == (3, 3)
            and conv.stride == (1, 1)
            and conv.padding == (1, 1)
            and conv.dilation == (1, 1)
            and conv.groups == 1
        ):
            return None
        relu = len(rest) > 1 and isinstance(layers[rest[1]], nn.ReLU)
        used += rest[: 2 if relu else 1]
        return grow, conv, relu, used  # type: ignore[return-value]

    def _output(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """x (B, T, 3, H, W) of the stack + aligned cond (B, 3, T, H, W) -> (B, 3, T, H, W) in about [-1, 1]."""
        x = x.transpose(1, 2)
        if self.cfg.lq_residual:
            # bicubic LR + learned detail, not clamped; in the wider of the two dtypes (float32 for a float16
            # condition and a bf16 stack), so the sum is not rounded to the stack's precision
            return cond + x
        return x * 2 - 1  # [0,1] -> [-1,1], not clamped

    # ------------------------------------------------------------------ API
    def forward(self, latents: torch.Tensor, cond: torch.Tensor | None = None, trim: bool = True) -> torch.Tensor:
        """Stateless whole-clip decode (differentiable); equals ``reset()`` + ``decode``.

        latents (B, 16, T, h, w); cond (B, 3, 4T or 4T-3, H, W) bicubic LR in [-1, 1].
        Returns (B, 3, 4T - 3, H, W) with ``trim`` (the stream start), else (B, 3, 4T, H, W).
        """
        if cond is not None:
            cond = make_tc_condition(cond, first=True, frames_per_latent=self.time_factor)
        x, _ = self._run(self._input(latents, cond), None)
        y = self._output(x, cond)
        return y[:, :, self.frames_to_trim :] if trim else y

    def decode(
        self, latents: torch.Tensor, cond: torch.Tensor | None = None, latents_per_pass: int | None = 1
    ) -> torch.Tensor:
        """Streaming decode of the next latents (B, 16, T, h, w) with their cond frames (B, 3, 4T, H, W).

        On the first call the cond may have 4T-3 frames (copies of frame 0 are prepended) and the output
        has 4T-3 frames; later calls give 4T frames. ``latents_per_pass`` bounds peak memory by running
        the chunk in slices (exactly equal to one pass); ``None`` runs it in one pass. On an H100 at 768x1408
        (bf16) one latent per pass was as fast as two and halved the peak memory (5.3 vs 10.6 GiB).
        """
        if cond is not None:
            cond = make_tc_condition(cond, first=not self._started, frames_per_latent=self.time_factor)
        t = latents.shape[2]
        step = latents_per_pass or t
        outs = []
        for a in range(0, t, step):
            lat = latents[:, :, a : a + step]
            cnd = None if cond is None else cond[:, :, a * self.time_factor : (a + step) * self.time_factor]
            x, self._mem = self._run(self._input(lat, cnd), self._mem)
            # copies in one layout (contiguous), whichever layout the pass made them in (an eager pass and a
            # compiled one differ): a compiled ``_run`` then sees the same input layout on every pass
            self._mem = {k: v.detach().clone(memory_format=torch.contiguous_format) for k, v in self._mem.items()}
            y = self._output(x, cnd)
            if not self._started:
                y = y[:, :, self.frames_to_trim :]
                self._started = True
            outs.append(y)
        return torch.cat(outs, dim=2)
