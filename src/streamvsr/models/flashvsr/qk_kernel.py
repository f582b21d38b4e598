"""The projection step's q/k tail as one Triton kernel (optional, CUDA; CPU under Triton's interpreter).

After the q and k projections every DiT block computes, for q and for k (``DiTBlock.pre``):
RMSNorm over the model width in float32, rounded to the working dtype and times the norm's weight; RoPE on pairs
of channels in float32 (:attr:`~streamvsr.models.flashvsr.dit.WanDiT.rope_fp32_for_half`), rounded again; and,
for the LCSA selection, the mean of each block of ``block`` consecutive tokens (tokens in window order).
Compiled, Inductor runs this as a reduction kernel for the norm and RoPE of both, a conversion pass and a mean
kernel each, about 126 us a layer at 768x1408 on an H100 for about 108 MB of traffic (sequential profile of the
eleventh session of 2026-11-27). :func:`qk_norm_rope` reads each projection once from memory (the second pass over
a block of rows comes from L2) and writes q (or k) and its block sums in the same program.

The arithmetic follows the reference's roundings (the norm's product rounded to the working dtype, then times the
weight and rounded, RoPE in float32 and rounded); the reductions add in another order, so the results match the
reference to its rounding, not bit for bit.
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["available", "qk_norm_rope", "qk_norm_rope_op", "qk_norm_rope_reference"]

try:  # optional: the kernel exists where Triton is installed (CUDA machines have it with torch)
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - the CPU tests need Triton too
    triton = None

if triton is not None:

    @triton.jit
    def _norm_rope(  # noqa: ANN202
        x_ptr,  # noqa: ANN001
        w_ptr,  # noqa: ANN001
        cos_ptr,  # noqa: ANN001
        sin_ptr,  # noqa: ANN001
        fill_ptr,  # noqa: ANN001
        out_ptr,  # noqa: ANN001
        sums_ptr,  # noqa: ANN001
        sxb,  # noqa: ANN001
        sxl,  # noqa: ANN001
        sob,  # noqa: ANN001
        sol,  # noqa: ANN001
        L,  # noqa: ANN001
        eps,  # noqa: ANN001
        H: tl.constexpr,
        D: tl.constexpr,
        BT: tl.constexpr,
        HAS_FILL: tl.constexpr,
    ):
        """One program per (group of BT output rows, batch): the rows' RMS over all H * D channels, then per head
        the normalised, weighted, rotated tile (stored) and its column sums over the rows (float32, stored)."""
        g = tl.program_id(0)
        b = tl.program_id(1)
        rows = g * BT + tl.arange(0, BT)  # output positions
        src = tl.load(fill_ptr + rows) if HAS_FILL else rows  # the projection row each position takes
        cols = tl.arange(0, D)
        x_rows = x_ptr + b.to(tl.int64) * sxb + src.to(tl.int64)[:, None] * sxl
        ss = tl.zeros([BT], tl.float32)
        for h in range(H):
            t = tl.load(x_rows + h * D + cols[None, :]).to(tl.float32)
            ss += tl.sum(t * t, axis=1)
        r = 1.0 / tl.sqrt_rn(ss / (H * D) + eps)  # (BT,)
        # RoPE without moving channels between threads: each channel also loads its pair partner (channel ^ 1), and
        # out = y * cos + partner * (-sin for the pair's first channel, +sin for its second), as the reference
        # writes it (pairs * cos + flip(pairs) * signed_sin)
        partner = cols ^ 1
        tab = rows.to(tl.int64)[:, None] * (D // 2) + (cols // 2)[None, :]
        c = tl.load(cos_ptr + tab)  # (BT, D) float32, each angle twice
        s = tl.load(sin_ptr + tab) * tl.where(cols % 2 == 0, -1.0, 1.0)[None, :]
        dt = out_ptr.dtype.element_ty
        o_rows = out_ptr + b.to(tl.int64) * sob + rows.to(tl.int64)[:, None] * sol
        n_groups = tl.num_programs(0)
        for h in range(H):
            t = tl.load(x_rows + h * D + cols[None, :]).to(tl.float32)
            tp = tl.load(x_rows + h * D + partner[None, :]).to(tl.float32)
            w = tl.load(w_ptr + h * D + cols).to(tl.float32)
            wp = tl.load(w_ptr + h * D + partner).to(tl.float32)
            y = ((t * r[:, None]).to(dt).to(tl.float32) * w[None, :]).to(dt).to(tl.float32)  # norm, weight, rounded
            yp = ((tp * r[:, None]).to(dt).to(tl.float32) * wp[None, :]).to(dt).to(tl.float32)
            o = (y * c + yp * s).to(dt)
            tl.store(o_rows + h * D + cols[None, :], o)
            colsum = tl.sum(o.to(tl.float32), axis=0)  # (D,)
            tl.store(sums_ptr + ((b.to(tl.int64) * n_groups + g) * H + h) * D + cols, colsum)


def available(x: torch.Tensor) -> bool:
    """Whether :func:`qk_norm_rope` runs on ``x``'s device: CUDA with Triton installed."""
    return triton is not None and x.device.type == "cuda"


def _on_device(x: torch.Tensor):  # noqa: ANN202
    return torch.cuda.device(x.device) if x.device.type == "cuda" else contextlib.nullcontext()


def qk_norm_rope(
    x: torch.Tensor,
    weight: torch.Tensor,
    eps: float,
    cos: torch.Tensor,
    sin: torch.Tensor,
    heads: int,
    block: int,
    fill: torch.Tensor | None = None,
    rows_per_program: int = 32,
    num_warps: int = 4,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RMSNorm, RoPE and block means of one projection: x (B, Lc, H * d) in bf16 or fp16 (rows of stride-1
    channels), weight (H * d,), cos and sin (L, d / 2) float32, fill (L,) int or None (L = Lc): the row of x each
    position takes. Returns (out (B, L, H, d) in x's dtype, means (B, H, L / block, d) in x's dtype, a transposed
    view of a (B, L / block, H, d) tensor as ``DiTBlock.pre`` gives it)."""
    B, Lc, C = x.shape
    d = C // heads
    L = Lc if fill is None else fill.shape[0]
    if x.stride(-1) != 1:
        x = x.contiguous()
    if cos.dtype != torch.float32 or sin.dtype != torch.float32 or cos.shape != (L, d // 2):
        raise ValueError(f"cos and sin must be float32 ({L}, {d // 2}), got {cos.dtype} {tuple(cos.shape)}")
    bt = rows_per_program
    if L % block or block % bt:
        raise ValueError(f"{L} positions are not whole blocks of {block} in groups of {bt} rows")
    out = torch.empty(B, L, heads, d, dtype=x.dtype, device=x.device)
    groups = L // bt
    sums = torch.empty(B, groups, heads, d, dtype=torch.float32, device=x.device)
    fill_t = fill.to(torch.int32).contiguous() if fill is not None else sums  # a placeholder pointer
    with _on_device(x):
        _norm_rope[(groups, B)](
            x, weight, cos.contiguous(), sin.contiguous(), fill_t, out, sums,
            x.stride(0), x.stride(1), out.stride(0), out.stride(1), L, eps,
            H=heads, D=d, BT=bt, HAS_FILL=fill is not None, num_warps=num_warps,
        )  # fmt: skip
    per = block // bt  # groups per block: their sums add in a fixed order
    means = (sums.view(B, L // block, per, heads, d).sum(2) / block).to(x.dtype)  # (B, N, H, d)
    return out, means.transpose(1, 2)


def qk_norm_rope_reference(
    x: torch.Tensor,
    weight: torch.Tensor,
    eps: float,
    cos: torch.Tensor,
    sin: torch.Tensor,
    heads: int,
    block: int,
    fill: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """What :func:`qk_norm_rope` computes, as ``DiTBlock.pre`` writes it (RMSNorm, gather, RoPE, block means)."""
    from streamvsr.models.flashvsr.dit import apply_rope

    B, Lc, C = x.shape
    d = C // heads
    xf = x.float()
    y = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * weight
    y = y.view(B, Lc, heads, d)
    if fill is not None:
        y = y[:, fill]
    out = apply_rope(y, cos, sin)
    L = out.shape[1]
    means = out.view(B, L // block, block, heads, d).mean(dim=2).transpose(1, 2)
    return out, means


@torch.library.custom_op("streamvsr::qk_norm_rope", mutates_args=())
def qk_norm_rope_op(
    x: torch.Tensor,
    weight: torch.Tensor,
    eps: float,
    cos: torch.Tensor,
    sin: torch.Tensor,
    heads: int,
    block: int,
    fill: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`qk_norm_rope` as an op a compiled graph keeps whole (the Triton kernel on CUDA, else the reference);
    the means come back as (B, L / block, H, d), not transposed."""
    fn = qk_norm_rope if available(x) else qk_norm_rope_reference
    out, means = fn(x, weight, eps, cos, sin, heads, block, fill)
    return out, means.transpose(1, 2).contiguous()


@qk_norm_rope_op.register_fake
def _(x, weight, eps, cos, sin, heads, block, fill):  # noqa: ANN001, ANN202
    B, Lc, C = x.shape
    L = Lc if fill is None else fill.shape[0]
    d = C // heads
    return x.new_empty(B, L, heads, d), x.new_empty(B, L // block, heads, d)
