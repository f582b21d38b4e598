"""Wan2.1-style DiT with locality-constrained block-sparse attention and a streaming KV cache.

State-dict keys and shapes are those of the original Wan2.1 layout (spec §2.2): at the official size
the module holds 825 tensors and 1,418,996,800 parameters. Two entry points:

* :meth:`WanDiT.forward_chunk`: streaming inference, one chunk of latents at a time with a
  :class:`~streamvsr.models.flashvsr.attention.KVCache` and LCSA (spec §1.9, §1.10);
* :meth:`WanDiT.forward`: a whole clip at once, full attention (optionally with a block-diagonal
  segment mask for image+video joint batches) or LCSA with the streaming-equivalent causal window mask.

Constant per-stream work (time embedding and cross-attention K/V of the fixed context) is returned by
:meth:`WanDiT.prepare` as a :class:`DiTState`; the caller keeps it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from streamvsr.models.flashvsr.attention import (
    KVCache,
    SparsePlan,
    block_means,
    causal_window_visibility,
    from_block_order,
    full_attention,
    lcsa_attention,
    make_plan,
    to_block_order,
    window_fill,
    window_padded_grid,
)
from streamvsr.models.flashvsr.config import AttentionConfig, DiTConfig

__all__ = [
    "DiTState",
    "WanDiT",
    "apply_rope",
    "apply_rope_stacked",
    "dit_config_from_state_dict",
    "rope_angles",
    "rope_split",
    "sinusoidal_embedding",
]


# ----------------------------------------------------------------------------------------------
# Pure functions
# ----------------------------------------------------------------------------------------------


def sinusoidal_embedding(dim: int, position: torch.Tensor) -> torch.Tensor:
    """(N,) positions -> (N, dim) float64 embedding [cos(p*w_j), sin(p*w_j)], w_j = 10000^(-j/(dim/2))."""
    half = dim // 2
    pos = position.to(torch.float64).reshape(-1)
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=pos.device) / half)
    ang = pos[:, None] * freqs[None]
    return torch.cat([torch.cos(ang), torch.sin(ang)], dim=1)


def rope_split(head_dim: int) -> tuple[int, int, int]:
    """Dims per axis (t, h, w) as Wan splits them: h, w get 2*(d//6) each, t the rest (128 -> 44/42/42)."""
    hw = 2 * (head_dim // 6)
    return head_dim - 2 * hw, hw, hw


def _axis_freqs(n: int, theta: float, device: torch.device) -> torch.Tensor:
    """n dims (n/2 complex pairs) -> (n/2,) float64 frequencies theta^(-2j/n)."""
    return 1.0 / theta ** (torch.arange(0, n, 2, dtype=torch.float64, device=device)[: n // 2] / n)


def rope_angles(
    t_positions: torch.Tensor, h: int, w: int, head_dim: int, theta: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape (f*h*w, head_dim/2) in float64 for tokens in (f, h, w) order.

    Angles are computed from the positions on the fly, so time positions are unbounded.
    """
    device = t_positions.device
    dt, dh, dw = rope_split(head_dim)
    tp = t_positions.to(torch.float64)
    at = tp[:, None] * _axis_freqs(dt, theta, device)[None]  # (f, dt/2)
    ah = torch.arange(h, dtype=torch.float64, device=device)[:, None] * _axis_freqs(dh, theta, device)[None]
    aw = torch.arange(w, dtype=torch.float64, device=device)[:, None] * _axis_freqs(dw, theta, device)[None]
    f = tp.shape[0]
    ang = torch.cat(
        [
            at[:, None, None, :].expand(f, h, w, -1),
            ah[None, :, None, :].expand(f, h, w, -1),
            aw[None, None, :, :].expand(f, h, w, -1),
        ],
        dim=-1,
    ).reshape(f * h * w, head_dim // 2)
    return torch.cos(ang), torch.sin(ang)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (a, b) = (x[2p], x[2p+1]) of x (B, L, H, d) by the angles (L, d/2) to (a c - b s, b c + a s);
    math in the tables' dtype (float64 as Wan computes it, or float32: see :attr:`WanDiT.rope_fp32_for_half`),
    cast back to x's dtype.

    Written as x * cos + swap(x) * (-sin, sin) rather than as a stack of the two halves: the same products and
    sums, so the same result, but one elementwise expression for Inductor to fuse into the RMSNorm before it (the
    stacked form had it write a float64 copy of q or k to memory)."""
    dtype = x.dtype
    B, L, H, d = x.shape
    pairs = x.to(cos.dtype).reshape(B, L, H, d // 2, 2)  # (..., (a, b))
    signed_sin = torch.stack([-sin, sin], dim=-1)[None, :, None]  # (1, L, 1, d/2, 2)
    out = pairs * cos[None, :, None, :, None] + pairs.flip(-1) * signed_sin
    return out.reshape(B, L, H, d).to(dtype)


def apply_rope_stacked(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """:func:`apply_rope` written as Wan writes it, the two rotated halves computed apart and stacked: the
    reference the tests compare with (equal results) and the benchmark's ``ropestack`` lever part."""
    B, L, H, d = x.shape
    xp = x.to(cos.dtype).reshape(B, L, H, d // 2, 2)
    a, b = xp[..., 0], xp[..., 1]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.stack([a * c - b * s, a * s + b * c], dim=-1).reshape(B, L, H, d).to(x.dtype)


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


# ----------------------------------------------------------------------------------------------
# Modules
# ----------------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    """x * rsqrt(mean(x^2) + eps) in fp32, cast back, times weight."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


@dataclass
class _AttnCtx:
    """What self-attention needs for one forward: geometry, RoPE and the attention policy."""

    grid: tuple[int, int, int]  # (f, h, w) token grid
    cos: torch.Tensor  # (L, d/2) float64
    sin: torch.Tensor
    plan: SparsePlan | None = None  # None: plain attention in natural token order
    window: tuple[int, int, int] = (2, 8, 8)
    window_visible: torch.Tensor | None = None  # (nqw, nkw) bool
    mask: torch.Tensor | None = None  # token mask for the plain path, (B, 1, L, L) bool
    kv_cache: KVCache | None = None
    block_order: bool = False  # tokens (and cos/sin) arrive in window (block) order, not (f, h, w) order
    means_in_pre: bool = True  # DiTBlock.pre also gives the block means of q and k (block order, LCSA only)
    # a grid padded to whole windows inside the DiT (attention.window_fill): per-token work on the real tokens
    fill: torch.Tensor | None = None  # (L,) compact token of each block-order position (q, k, v gathered by it)
    real: torch.Tensor | None = None  # (Lc,) block-order position of each real token (the attention output's rows)


class _QKVO(nn.Module):
    """The projections both attentions share (official key layout: q, k, v, o, norm_q, norm_k)."""

    def __init__(self, dim: int, num_heads: int, eps: float):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = RMSNorm(dim, eps)
        self.norm_k = RMSNorm(dim, eps)


class SelfAttention(_QKVO):
    """Self-attention in two steps: :meth:`project` (pure tensor math: projections, RMSNorm, RoPE) and
    :meth:`attend` (the attention policy: full or LCSA with the KV cache, Python bookkeeping included).
    The split lets a runtime compile the first step without tracing the second."""

    def project(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, fill: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, Lc, C) -> q, k, v (B, L, H, d), RoPE applied to q and k. fill (L,) long: the token (of Lc) each
        of the L positions takes (a grid padded inside the DiT, see :func:`~streamvsr.models.flashvsr.attention.
        window_fill`); None: L = Lc. RoPE comes after the gather: every position rotates by its own angles."""
        B, Lc, _ = x.shape
        H, d = self.num_heads, self.head_dim
        q = self.norm_q(self.q(x)).view(B, Lc, H, d)
        k = self.norm_k(self.k(x)).view(B, Lc, H, d)
        v = self.v(x).view(B, Lc, H, d)
        if fill is not None:
            q, k, v = q[:, fill], k[:, fill], v[:, fill]  # (B, L, H, d)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def forward(self, x: torch.Tensor, ctx: _AttnCtx, layer: int) -> torch.Tensor:
        return self.o(self.attend(*self.project(x, ctx.cos, ctx.sin), ctx, layer))

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        ctx: _AttnCtx,
        layer: int,
        means: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """q, k, v (B, L, H, d) -> attention output (B, L, C), before the output projection ``o``.

        means: the block means of q and k (B, H, L / 128, d) where the caller has them (:meth:`DiTBlock.pre`
        with ``block``; tokens in block order), else computed here."""
        B, L, H, d = q.shape
        C = H * d
        if ctx.plan is None:
            out = full_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), ctx.mask)
            return out.transpose(1, 2).reshape(B, L, C)
        plan = ctx.plan
        if ctx.block_order:  # already in block order: views, no copy
            qb, kb, vb = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H, L, d)
        else:
            qb = to_block_order(q, ctx.grid, ctx.window, plan.order).transpose(1, 2)  # (B, H, L, d) block order
            kb = to_block_order(k, ctx.grid, ctx.window, plan.order).transpose(1, 2)
            vb = to_block_order(v, ctx.grid, ctx.window, plan.order).transpose(1, 2)
        qm, km = means if means is not None and ctx.block_order else (None, block_means(kb, plan.block))  # (B, H, N, d)
        n_windows = L // (plan.nb * plan.block)
        cache = ctx.kv_cache
        if cache is not None:  # keys of the cached windows + this chunk's (slot order)
            kb, vb, km, n_windows = cache.append(layer, kb, vb, km, n_windows, pieces=plan.backend == "flex")
        out = lcsa_attention(qb, kb, vb, plan, ctx.window_visible, k_means=km, q_means=qm)
        if cache is not None:
            cache.evict(layer)
        out = out.transpose(1, 2)  # (B, L, H, d)
        if not ctx.block_order:
            out = from_block_order(out, ctx.grid, ctx.window, plan.order)
        return out.reshape(B, L, C)


class CrossAttention(_QKVO):
    def kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, Lc, dim) context -> K, V (B, H, Lc, d)."""
        B, Lc, _ = context.shape
        k = self.norm_k(self.k(context)).view(B, Lc, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v(context).view(B, Lc, self.num_heads, self.head_dim).transpose(1, 2)
        return k, v

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        B, L, C = x.shape
        q = self.norm_q(self.q(x)).view(B, L, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = kv
        if k.shape[0] != B:
            k, v = k.expand(B, -1, -1, -1), v.expand(B, -1, -1, -1)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.o(out.transpose(1, 2).reshape(B, L, C))


class DiTBlock(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        dim, eps = cfg.dim, cfg.eps
        self.norm1 = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.self_attn = SelfAttention(dim, cfg.num_heads, eps)
        self.norm3 = nn.LayerNorm(dim, eps=eps, elementwise_affine=True)
        self.cross_attn = CrossAttention(dim, cfg.num_heads, eps)
        self.norm2 = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.ffn = nn.Sequential(nn.Linear(dim, cfg.ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(cfg.ffn_dim, dim))
        self.modulation = nn.Parameter(torch.empty(1, 6, dim))

    def forward(
        self,
        x: torch.Tensor,
        t_mod: torch.Tensor,
        cross_kv: tuple[torch.Tensor, torch.Tensor],
        ctx: _AttnCtx,
        layer: int,
    ) -> torch.Tensor:
        plan = ctx.plan
        lcsa = plan is not None and plan.sparse and plan.backend != "full"
        blk = plan.block if ctx.block_order and ctx.means_in_pre and lcsa else 0  # type: ignore[union-attr]
        q, k, v, *means = self.pre(x, t_mod, ctx.cos, ctx.sin, blk, ctx.fill)
        attn = self.self_attn.attend(q, k, v, ctx, layer, tuple(means) if means else None)  # type: ignore[arg-type]
        return self.post(x, attn, t_mod, cross_kv, ctx.real)

    # forward = pre -> self_attn.attend -> post. pre and post are pure tensor math (no Python state), so a
    # runtime may compile them (pipeline.flashvsr.compile_dit); attend keeps the KV-cache bookkeeping eager.

    def pre(
        self,
        x: torch.Tensor,
        t_mod: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        block: int = 0,
        fill: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """(B, Lc, dim) -> q, k, v (B, L, H, d): modulated LayerNorm, projections, RMSNorm, RoPE (fill: see
        :meth:`SelfAttention.project`; None: L = Lc).

        block > 0 (tokens in block order): also the block means of q and k, (B, H, L / block, d) each, for the
        LCSA selection (in a compiled ``pre`` they come out of the same kernels instead of a strided copy each)."""
        sh1, sc1 = (self.modulation + t_mod)[:, :2].chunk(2, dim=1)  # each (B, 1, dim)
        q, k, v = self.self_attn.project(_modulate(self.norm1(x), sh1, sc1), cos, sin, fill)
        if not block:
            return q, k, v
        B, L, H, d = q.shape
        qm = q.view(B, L // block, block, H, d).mean(dim=2).transpose(1, 2)  # (B, H, L / block, d)
        km = k.view(B, L // block, block, H, d).mean(dim=2).transpose(1, 2)
        return q, k, v, qm, km

    def post(
        self,
        x: torch.Tensor,
        attn: torch.Tensor,
        t_mod: torch.Tensor,
        cross_kv: tuple[torch.Tensor, torch.Tensor],
        real: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Residual of the self-attention output ``attn`` (B, L, dim), cross-attention and the FFN on x (B, Lc,
        dim); real (Lc,) long: the rows of ``attn`` that are x's tokens (None: all, L = Lc)."""
        if real is not None:
            attn = attn[:, real]  # (B, Lc, dim)
        _, _, g1, sh2, sc2, g2 = (self.modulation + t_mod).chunk(6, dim=1)  # each (B, 1, dim)
        x = x + g1 * self.self_attn.o(attn)
        x = x + self.cross_attn(self.norm3(x), cross_kv)
        return x + g2 * self.ffn(_modulate(self.norm2(x), sh2, sc2))


class Head(nn.Module):
    def __init__(self, dim: int, out_dim: int, eps: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.head = nn.Linear(dim, out_dim)
        self.modulation = nn.Parameter(torch.empty(1, 2, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        shift, scale = (self.modulation + t[:, None, :]).chunk(2, dim=1)  # uses t, not t_mod
        return self.head(_modulate(self.norm(x), shift, scale))


@dataclass
class DiTState:
    """Per-stream constants: time embedding t (B, dim), t_mod (B, 6, dim), cross-attn K/V per layer."""

    t: torch.Tensor
    t_mod: torch.Tensor
    cross_kv: list[tuple[torch.Tensor, torch.Tensor]]


class WanDiT(nn.Module):
    """Wan2.1 DiT (official key layout) with LCSA streaming support."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.cfg = cfg
        dim = cfg.dim
        self.patch_embedding = nn.Conv3d(cfg.in_channels, dim, kernel_size=cfg.patch, stride=cfg.patch)
        if cfg.learned_context:
            self.context = nn.Parameter(torch.empty(1, cfg.text_len, dim))
        else:
            self.text_embedding = nn.Sequential(
                nn.Linear(cfg.text_dim, dim), nn.GELU(approximate="tanh"), nn.Linear(dim, dim)
            )
        self.time_embedding = nn.Sequential(nn.Linear(cfg.freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        self.blocks = nn.ModuleList([DiTBlock(cfg) for _ in range(cfg.num_layers)])
        self.head = Head(dim, cfg.out_channels * math.prod(cfg.patch), cfg.eps)
        self.gradient_checkpointing = False
        # RoPE math in float32 instead of float64 when the tokens are bf16/fp16: q and k are rounded to 16 bits
        # afterwards, so the two differ only where a float64 result lies within float32's rounding of a 16-bit
        # boundary (one 16-bit step, rarely). A runtime choice, off by default (the reference).
        self.rope_fp32_for_half = False
        # the LCSA selection's block means of q and k from DiTBlock.pre (the same math; in a compiled pre they come
        # out of the projection step's kernels instead of a strided copy and a mean each per layer)
        self.block_means_in_pre = True
        self._fill_maps: dict[tuple, tuple[torch.Tensor, ...]] = {}  # see _window_fill
        self.init_weights()

    # -- initialisation ------------------------------------------------------------------------

    def init_weights(self, zero_head: bool = False) -> None:
        """Wan-style init: xavier linears, zero biases, N(0, 0.02) embeddings, modulation ~ N(0, 1/dim)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.xavier_uniform_(self.patch_embedding.weight.flatten(1))
        nn.init.zeros_(self.patch_embedding.bias)
        emb = [self.time_embedding]
        if not self.cfg.learned_context:
            emb.append(self.text_embedding)
        for seq in emb:
            for m in seq.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, std=0.02)
        if self.cfg.learned_context:
            nn.init.normal_(self.context, std=1.0)
        std = self.cfg.dim**-0.5
        for b in self.blocks:
            nn.init.normal_(b.modulation, std=std)
        nn.init.normal_(self.head.modulation, std=std)
        if zero_head:
            nn.init.zeros_(self.head.head.weight)

    # -- helpers -------------------------------------------------------------------------------

    @property
    def dtype(self) -> torch.dtype:
        return self.patch_embedding.weight.dtype

    def time(self, t: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Timestep(s) (scalar or (B,)) -> t (B, dim), t_mod (B, 6, dim) in the model dtype."""
        device = self.patch_embedding.weight.device
        tt = torch.as_tensor(t, device=device).reshape(-1)
        s = sinusoidal_embedding(self.cfg.freq_dim, tt).to(self.dtype)
        te = self.time_embedding(s)
        return te, self.time_projection(te).unflatten(1, (6, self.cfg.dim))

    def embed_context(self, context: torch.Tensor | None = None) -> torch.Tensor:
        """Text context (B, Lc, text_dim) -> (B, Lc, dim); the learned context when configured."""
        if self.cfg.learned_context:
            return self.context
        if context is None:
            raise ValueError("this DiT needs a text context tensor (B, text_len, text_dim)")
        return self.text_embedding(context.to(self.dtype))

    def prepare(self, context: torch.Tensor | None = None, t: float | torch.Tensor = 1000.0) -> DiTState:
        """Per-stream constants (time embedding and cross-attention K/V of the fixed context)."""
        te, tm = self.time(t)
        ctx = self.embed_context(context)
        return DiTState(t=te, t_mod=tm, cross_kv=[b.cross_attn.kv(ctx) for b in self.blocks])

    def rope(self, t_positions: torch.Tensor, h: int, w: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin (f*h*w, head_dim/2) for tokens of ``dtype``: float64, or float32 for 16-bit tokens when
        :attr:`rope_fp32_for_half` is set."""
        cos, sin = rope_angles(t_positions, h, w, self.cfg.head_dim, self.cfg.rope_theta)
        if self.rope_fp32_for_half and dtype in (torch.bfloat16, torch.float16):
            return cos.float(), sin.float()
        return cos, sin

    def patchify(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        """(B, C, F, H, W) -> tokens (B, f*h*w, dim) and grid (f, h, w)."""
        y = self.patch_embedding(x.to(self.dtype))
        grid = (y.shape[2], y.shape[3], y.shape[4])
        return y.flatten(2).transpose(1, 2), grid

    def unpatchify(self, y: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """(B, f*h*w, prod(patch)*C) -> (B, C, f*pt, h*ph, w*pw); channel innermost in the token."""
        f, h, w = grid
        pt, ph, pw = self.cfg.patch
        c = self.cfg.out_channels
        B = y.shape[0]
        y = y.reshape(B, f, h, w, pt, ph, pw, c)
        return y.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(B, c, f * pt, h * ph, w * pw)

    def _run_blocks_in_block_order(
        self, x: torch.Tensor, state: DiTState, ctx: _AttnCtx, grid: tuple[int, int, int]
    ) -> torch.Tensor:
        """LCSA path: the blocks see the tokens (and RoPE tables) in window (block) order, so self-attention
        reorders nothing per layer; every other per-token op ignores the order. One permutation of
        (B, f*h*w, dim) in, one out.

        grid: the tokens' own (f, h, w); ``ctx.grid`` (with ``ctx.cos``/``ctx.sin``) is it padded to whole windows
        (:func:`~streamvsr.models.flashvsr.attention.window_padded_grid`). Where the two differ, the per-token work
        runs on the real tokens only and attention fills the padding positions by reflection
        (:func:`~streamvsr.models.flashvsr.attention.window_fill`)."""
        g, win = ctx.grid, ctx.window
        order = ctx.plan.order if ctx.plan is not None else None  # the plan's order of a window's blocks
        ctx.cos = to_block_order(ctx.cos[None], g, win, order)[0]  # (L, d/2) in block order
        ctx.sin = to_block_order(ctx.sin[None], g, win, order)[0]
        ctx.block_order = True
        if grid == g:
            return from_block_order(self._run_blocks(to_block_order(x, g, win, order), state, ctx), g, win, order)
        take, ctx.fill, ctx.real, back = self._window_fill(grid, win, ctx.plan, x.device)
        return self._run_blocks(x[:, take], state, ctx)[:, back]  # (B, f*h*w, dim) natural order

    def _window_fill(
        self, grid: tuple[int, int, int], window: tuple[int, int, int], plan: SparsePlan | None, device: torch.device
    ) -> tuple[torch.Tensor, ...]:
        """:func:`~streamvsr.models.flashvsr.attention.window_fill`, kept per grid and block order: building the
        maps reads a count back from the device (``nonzero``), which would stall a stream's every chunk."""
        order = plan.order if plan is not None else None
        key = (grid, window, None if order is None else plan.order_key, str(device))  # type: ignore[union-attr]
        maps = self._fill_maps.get(key)
        if maps is None:
            if len(self._fill_maps) >= 8:  # a few resolutions at a time
                self._fill_maps.clear()
            maps = self._fill_maps[key] = window_fill(grid, window, order, device)
        return maps

    def _lcsa_ctx(
        self,
        grid: tuple[int, int, int],
        t_positions: torch.Tensor,
        attn: AttentionConfig,
        tokens: torch.Tensor,
        **kw: object,
    ) -> _AttnCtx:
        """The attention context of an LCSA forward over the token grid ``grid`` (``kw``: its KV cache or window
        visibility): attention runs on the grid padded to whole windows (see :func:`window_fill`), so the RoPE
        tables and the plan are those of the padded grid."""
        padded = window_padded_grid(grid, attn.window)
        cos, sin = self.rope(t_positions.to(tokens.device), *padded[1:], tokens.dtype)
        plan = make_plan(*padded[1:], attn, tokens.device, patch_px=8 * self.cfg.patch[1])
        return _AttnCtx(
            grid=padded, cos=cos, sin=sin, plan=plan, window=attn.window, means_in_pre=self.block_means_in_pre, **kw
        )  # type: ignore[arg-type]

    def _run_blocks(self, x: torch.Tensor, state: DiTState, ctx: _AttnCtx) -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            if self.gradient_checkpointing and torch.is_grad_enabled() and ctx.kv_cache is None:
                x = checkpoint(block, x, state.t_mod, state.cross_kv[i], ctx, i, use_reentrant=False)
            else:
                x = block(x, state.t_mod, state.cross_kv[i], ctx, i)
        return x

    # -- entry points --------------------------------------------------------------------------

    def forward_chunk(
        self,
        x: torch.Tensor,
        lq_tokens: torch.Tensor | None = None,
        t: float | torch.Tensor = 1000.0,
        t_positions: torch.Tensor | None = None,
        kv_cache: KVCache | None = None,
        attn: AttentionConfig | None = None,
        state: DiTState | None = None,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Streaming step: velocity (B, C, f, H8, W8) for one chunk of latents.

        x: (B, 16, f, H8, W8) noisy latents (f a multiple of the temporal window); lq_tokens: (B, f*h*w, dim)
        added before block 0; t_positions: (f,) absolute latent time indices for RoPE (default 0..f-1);
        kv_cache: keys/values of earlier windows (all visible), updated in place. All windows of the chunk
        see each other and every cached window. state: from :meth:`prepare` (else computed here from
        ``context`` and ``t``).
        """
        attn = attn or AttentionConfig()
        if state is None:
            state = self.prepare(context, t)
        tokens, grid = self.patchify(x)
        f = grid[0]
        if f % attn.window[0]:
            raise ValueError(f"chunk of {f} latents is not a multiple of the temporal window {attn.window[0]}")
        if lq_tokens is not None:
            tokens = tokens + lq_tokens.to(tokens.dtype)
        if t_positions is None:
            t_positions = torch.arange(f, device=tokens.device)
        ctx = self._lcsa_ctx(grid, t_positions, attn, tokens, kv_cache=kv_cache)
        tokens = self._run_blocks_in_block_order(tokens, state, ctx, grid)
        return self.unpatchify(self.head(tokens, state.t), grid)

    def forward(
        self,
        x: torch.Tensor,
        lq_tokens: torch.Tensor | None = None,
        t: float | torch.Tensor = 1000.0,
        context: torch.Tensor | None = None,
        *,
        t_positions: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
        attn: AttentionConfig | None = None,
        causal: bool = False,
        first_windows: int = 3,
        state: DiTState | None = None,
    ) -> torch.Tensor:
        """Whole-clip forward: velocity (B, C, F, H8, W8).

        attn None: full attention over all tokens; ``segment_ids`` ((F,) or (B, F) ints per latent frame)
        then restricts attention to frames of the same segment (block-diagonal mask, image+video joint
        batches; pass ``t_positions`` so each segment's time index restarts at 0).
        attn given: LCSA over windows; ``causal`` applies the streaming-equivalent window visibility
        (the first ``first_windows`` windows see each other, later window i sees i - kv_windows ... i),
        so the result equals :meth:`forward_chunk` run chunk by chunk with a KV cache.
        t: scalar or (B,) timesteps.
        """
        if state is None:
            state = self.prepare(context, t)
        tokens, grid = self.patchify(x)
        f, h, w = grid
        if lq_tokens is not None:
            tokens = tokens + lq_tokens.to(tokens.dtype)
        if t_positions is None:
            t_positions = torch.arange(f, device=tokens.device)
        if attn is None:
            cos, sin = self.rope(t_positions.to(tokens.device), h, w, tokens.dtype)
            mask = None
            if segment_ids is not None:
                seg = segment_ids.to(tokens.device)
                seg = seg[None] if seg.ndim == 1 else seg  # (B|1, F)
                seg = seg.repeat_interleave(h * w, dim=1)  # (B|1, L)
                mask = (seg[:, :, None] == seg[:, None, :])[:, None]  # (B|1, 1, L, L)
            ctx = _AttnCtx(grid=grid, cos=cos, sin=sin, mask=mask)
            tokens = self._run_blocks(tokens, state, ctx)
        else:
            if segment_ids is not None:
                raise ValueError("segment_ids are only supported with full attention (attn=None)")
            nw = f // attn.window[0]
            vis = causal_window_visibility(nw, attn.kv_windows, first_windows) if causal else None  # host
            ctx = self._lcsa_ctx(grid, t_positions, attn, tokens, window_visible=vis)
            tokens = self._run_blocks_in_block_order(tokens, state, ctx, grid)
        return self.unpatchify(self.head(tokens, state.t), grid)


def dit_config_from_state_dict(sd: dict[str, torch.Tensor], head_dim: int = 128) -> DiTConfig:
    """Read a :class:`DiTConfig` off the official key layout (shapes only; meta tensors work).

    The head count cannot be read from the weights: it is dim / ``head_dim`` (official 128).
    """
    pw = sd["patch_embedding.weight"]  # (dim, in, pt, ph, pw)
    dim, cin = pw.shape[0], pw.shape[1]
    patch = (pw.shape[2], pw.shape[3], pw.shape[4])
    layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    ffn = sd["blocks.0.ffn.0.weight"].shape[0]
    out = sd["head.head.weight"].shape[0] // math.prod(patch)
    freq = sd["time_embedding.0.weight"].shape[1]
    if dim % head_dim:
        raise ValueError(f"dim {dim} is not a multiple of the head size {head_dim}")
    learned = "context" in sd
    if learned:
        text_dim, text_len = 4096, sd["context"].shape[1]
    else:
        text_dim, text_len = sd["text_embedding.0.weight"].shape[1], 512
    return DiTConfig(
        dim=dim,
        num_layers=layers,
        num_heads=dim // head_dim,
        ffn_dim=ffn,
        in_channels=cin,
        out_channels=out,
        patch=patch,
        text_dim=text_dim,
        text_len=text_len,
        freq_dim=freq,
        learned_context=learned,
    )
