"""The DiT FFN's first linear with its tanh GELU in the GEMM's epilogue (cuBLASLt), for the bf16/fp16 path.

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

__all__ = ["LinearGELU", "ffn_gelu_fused", "fuse_ffn_gelu", "linear_gelu_tanh", "unfuse_ffn_gelu"]


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
