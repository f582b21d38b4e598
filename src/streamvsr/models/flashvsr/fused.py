"""Fused inference ops: the DiT FFN's first linear with its tanh GELU in the GEMM's epilogue (cuBLASLt), and two
for the TCDecoder's full-resolution tail (a convolution with its ReLU, a 3x3 convolution with few outputs).

``gelu_tanh(x W^T + b)`` is what every DiT block's FFN computes first (``ffn.0`` + ``ffn.1``). Compiled, Inductor
runs the GEMM through cuBLAS and the bias + GELU as a Triton kernel of its own, which reads and writes the
(tokens, ffn_dim) activation once more. On CUDA, :func:`linear_gelu_tanh` (the ``streamvsr::linear_gelu_tanh``
op, opaque to Inductor so the pair is not split again) asks cuBLASLt for the GELU-with-bias epilogue through
``torch._addmm_activation``, whose GELU on CUDA is the tanh approximation. Elsewhere it runs the reference,
``F.gelu(F.linear(x, w, b), approximate="tanh")`` (on CPU ``_addmm_activation`` uses the exact erf GELU).

:func:`fuse_ffn_gelu` swaps the pair in every block of a DiT in place (weights shared, names unchanged).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LinearGELU",
    "conv2d_relu",
    "conv3x3_by_taps",
    "ffn_gelu_fused",
    "fuse_ffn_gelu",
    "linear_gelu_tanh",
    "nearest2x_conv3x3",
    "nearest2x_conv3x3_weight",
    "unfuse_ffn_gelu",
]


@torch.library.custom_op("streamvsr::linear_gelu_tanh", mutates_args=())
def linear_gelu_tanh(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """gelu_tanh(x @ weight.T + bias) for x (M, K), weight (N, K), bias (N,): (M, N)."""
    if x.is_cuda and x.dtype in (torch.bfloat16, torch.float16):
        return torch._addmm_activation(bias, x, weight.t(), use_gelu=True)  # cuBLASLt GELU_BIAS epilogue
    return F.gelu(F.linear(x, weight, bias), approximate="tanh")


@linear_gelu_tanh.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return x.new_empty((x.shape[0], weight.shape[0]))


class LinearGELU(nn.Module):
    """``nn.Linear`` followed by the tanh GELU, as one op (see the module docstring); inference only."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        if linear.bias is None:
            raise ValueError("LinearGELU needs a linear with a bias")
        self.weight = linear.weight
        self.bias = linear.bias
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad):
            return F.gelu(F.linear(x, self.weight, self.bias), approximate="tanh")  # the op has no backward
        y = linear_gelu_tanh(x.reshape(-1, x.shape[-1]), self.weight, self.bias)  # (B*L, N)
        return y.reshape(*x.shape[:-1], self.out_features)


def fuse_ffn_gelu(dit: nn.Module) -> int:
    """Replace ``ffn.0`` + ``ffn.1`` (Linear, tanh GELU) of every block of ``dit.blocks`` by :class:`LinearGELU`
    and ``nn.Identity``, in place; returns how many pairs were fused (blocks whose FFN differs are left alone).
    Undo with :func:`unfuse_ffn_gelu`."""
    n = 0
    for block in dit.blocks:
        ffn = getattr(block, "ffn", None)
        if not isinstance(ffn, nn.Sequential) or len(ffn) < 2 or type(ffn[0]) is not nn.Linear:
            continue
        act = ffn[1]
        if not isinstance(act, nn.GELU) or act.approximate != "tanh" or ffn[0].bias is None:
            continue
        ffn[0] = LinearGELU(ffn[0])
        ffn[1] = nn.Identity()
        n += 1
    return n


def unfuse_ffn_gelu(dit: nn.Module) -> int:
    """Undo :func:`fuse_ffn_gelu` in place (the same weight tensors go back into ``nn.Linear``)."""
    n = 0
    for block in dit.blocks:
        ffn = getattr(block, "ffn", None)
        if isinstance(ffn, nn.Sequential) and isinstance(ffn[0], LinearGELU):
            fused = ffn[0]
            lin = nn.Linear(fused.in_features, fused.out_features, device="meta")
            lin.weight, lin.bias = fused.weight, fused.bias
            ffn[0] = lin
            ffn[1] = nn.GELU(approximate="tanh")
            n += 1
    return n


def ffn_gelu_fused(dit: nn.Module) -> bool:
    """Whether any block of ``dit.blocks`` runs its FFN through :class:`LinearGELU`."""
    return any(
        isinstance(getattr(b, "ffn", None), nn.Sequential) and isinstance(b.ffn[0], LinearGELU) for b in dit.blocks
    )


# ----------------------------------------------------------------------------------------------
# The TCDecoder's tail
# ----------------------------------------------------------------------------------------------


def _conv_out_format(x: torch.Tensor) -> torch.memory_format:
    """The memory format cuDNN gives a convolution of ``x``: channels-last for a channels-last 4-D input."""
    cl = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if cl else torch.contiguous_format


@torch.library.custom_op("streamvsr::conv2d_relu", mutates_args=())
def conv2d_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int) -> torch.Tensor:
    """relu(conv2d(x, weight, bias, stride 1, padding)) for x (N, C, H, W): (N, O, H', W').

    On CUDA in bf16/fp16 cuDNN runs the ReLU in the convolution's epilogue (``torch.cudnn_convolution_relu``), so
    the output is written once instead of written, read and written again by a separate ReLU; elsewhere the
    reference. Opaque to Inductor (a compiled graph would split the pair again)."""
    fmt = _conv_out_format(x)
    if x.is_cuda and x.dtype in (torch.bfloat16, torch.float16):
        y = torch.cudnn_convolution_relu(x, weight, bias, [1, 1], [padding, padding], [1, 1], 1)
    else:
        y = F.relu(F.conv2d(x, weight, bias, padding=padding))
    return y.contiguous(memory_format=fmt)


@conv2d_relu.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int) -> torch.Tensor:
    n, _, h, w = x.shape
    kh, kw = weight.shape[2:]
    shape = (n, weight.shape[0], h + 2 * padding - kh + 1, w + 2 * padding - kw + 1)
    return x.new_empty(shape).contiguous(memory_format=_conv_out_format(x))


def conv3x3_by_taps(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A 3x3 convolution (stride 1, zero padding 1) with few output channels, as one GEMM and a shifted sum.

    x (N, C, H, W), weight (O, C, 3, 3) -> (N, O, H, W) in x's dtype. The GEMM multiplies every pixel's C channels
    by the 9 * O tap weights (z: (9 * O, N, H, W), one plane per tap and output channel, accumulated and kept in
    float32); output pixel (i, j) is then the sum over taps (a, b) of plane (a, b) at pixel (i + a - 1, j + b - 1),
    plus the bias. The same sum as the convolution, in another order. For O = 3 cuDNN's convolution is a thin GEMM
    that runs below the memory bandwidth; here the input is read once by a wide GEMM and the rest is a small
    pointwise sum over contiguous planes."""
    n, c, h, w = x.shape
    o = weight.shape[0]
    if weight.shape[1:] != (c, 3, 3):
        raise ValueError(f"conv3x3_by_taps needs a (O, {c}, 3, 3) weight, got {tuple(weight.shape)}")
    taps = weight.permute(2, 3, 0, 1).reshape(9 * o, c)  # rows (a, b, o)
    width = -(-9 * o // 8) * 8  # GEMM rows padded to a multiple of 8 (16-byte rows for the tensor cores)
    taps = F.pad(taps, (0, 0, 0, width - 9 * o))
    pixels = x.permute(1, 0, 2, 3).reshape(c, n * h * w)  # (C, N*H*W): a transposed view of a channels-last x
    if x.is_cuda and x.dtype in (torch.bfloat16, torch.float16):
        z = torch.mm(taps, pixels, out_dtype=torch.float32)  # (width, N*H*W), float32 accumulation kept
    else:
        acc = torch.promote_types(x.dtype, torch.float32)
        z = taps.to(acc) @ pixels.to(acc)
    z = F.pad(z[: 9 * o].reshape(9 * o, n, h, w), (1, 1, 1, 1))  # (9*O, N, H+2, W+2), zero border
    y = sum(z[(3 * a + b) * o : (3 * a + b + 1) * o, :, a : a + h, b : b + w] for a in range(3) for b in range(3))
    if bias is not None:
        y = y + bias.to(y.dtype)[:, None, None, None]
    return y.permute(1, 0, 2, 3).to(x.dtype)  # (N, O, H, W)


# ----------------------------------------------------------------------------------------------
# The TCDecoder's upsampling: a 3x3 convolution of a nearest x2 upsampling as one sub-pixel convolution
# ----------------------------------------------------------------------------------------------

# Along one axis, output pixel 2i + a of conv3x3(nearest_x2(x)) reads upsampled pixels 2i + a - 1 + t (taps t = 0,
# 1, 2), that is input pixels i + floor((a - 1 + t) / 2): for a = 0 input i - 1 (tap 0) and i (taps 1 + 2), for
# a = 1 input i (taps 0 + 1) and i + 1 (tap 2).


def _phase_taps(w: torch.Tensor, dim: int) -> list[torch.Tensor]:
    """The 3 taps of ``w`` along ``dim`` -> for each phase a = 0, 1 the 2 taps on input offsets a - 1 + u (u = 0,
    1) along that dim, the taps landing on one input pixel summed. Slices and sums, no tensor constant (a compiled
    graph that holds one cannot be saved by PyTorch's ahead-of-time capture)."""
    t0, t1, t2 = w.unbind(dim)
    return [torch.stack([t0, t1 + t2], dim), torch.stack([t0 + t1, t2], dim)]


def nearest2x_conv3x3_weight(weight: torch.Tensor) -> torch.Tensor:
    """(O, C, 3, 3) weight of a 3x3 convolution that follows a nearest x2 upsampling -> the (4 * O, C, 2, 2) weight
    of the equivalent 2x2 convolution on the input, output channels in phase order (a, b, o) (a, b: the output
    pixel's row and column parity). The taps that land on the same input pixel are summed (in float32 or wider,
    then rounded to ``weight``'s dtype)."""
    acc = torch.promote_types(weight.dtype, torch.float32)
    rows = _phase_taps(weight.to(acc), 2)  # per a: (O, C, 2, 3)
    w2 = torch.stack([torch.stack(_phase_taps(r, 3)) for r in rows])  # (2 a, 2 b, O, C, 2, 2)
    return w2.reshape(4 * weight.shape[0], weight.shape[1], 2, 2).to(weight.dtype)


def nearest2x_conv3x3(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, relu: bool = False
) -> torch.Tensor:
    """``conv2d(interpolate(x, scale_factor=2, mode="nearest"), weight, bias, padding=1)`` (then a ReLU when
    ``relu``) without making the upsampled input: x (N, C, H, W), weight (O, C, 3, 3) -> (N, O, 2H, 2W).

    A nearest x2 upsampling repeats each pixel in a 2x2 square, so each of the four output phases (row and column
    parity) is a 2x2 convolution of x with summed taps (:func:`nearest2x_conv3x3_weight`). All four run as one
    2x2 convolution with 4 * O outputs and padding 1, whose (H + 1) x (W + 1) output holds phase (a, b) at offset
    (a, b); the phases are then interleaved. 16 instead of 36 multiply-adds per input pixel, channel pair and
    output channel, and the 4x larger upsampled input is never written or read. The zero padding of the 3x3
    convolution falls on the padding of the 2x2 one, so the borders are exact as well; only the float rounding
    differs (summed taps). The output keeps x's memory format."""
    n, c, h, w = x.shape
    o = weight.shape[0]
    if weight.shape[1:] != (c, 3, 3):
        raise ValueError(f"nearest2x_conv3x3 needs a (O, {c}, 3, 3) weight, got {tuple(weight.shape)}")
    b2 = None if bias is None else bias.repeat(4)
    y = F.conv2d(x, nearest2x_conv3x3_weight(weight), b2, padding=1)  # (N, 4*O, H+1, W+1), channels (a, b, o)
    y = y.view(n, 2, 2, o, h + 1, w + 1)
    rows = [torch.stack([y[:, a, b, :, a : a + h, b : b + w] for b in (0, 1)], dim=-1) for a in (0, 1)]
    z = torch.stack(rows, dim=3).reshape(n, o, 2 * h, 2 * w)  # (N, O, H, 2, W, 2) -> (N, O, 2H, 2W)
    if relu:
        z = F.relu(z)
    return z.contiguous(memory_format=_conv_out_format(x))
