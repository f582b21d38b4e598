"""Locality-constrained block-sparse attention (LCSA, spec §1.10) and the streaming KV cache (§1.9).

Tokens of a (f, h, w) latent grid are regrouped into windows of ``(2, 8, 8) = 128`` tokens ("blocks"),
ordered (temporal window, row window, column window), tokens inside ordered (dt, dy, dx). Block
selection works on block means of the post-RoPE q and k:

    scores = mean(q_blk) . mean(k_blk) / sqrt(d)        (working dtype)
    probs  = softmax(scores + local_mask)               (fp32, over key blocks)
    keep   = probs > (k+1)-th largest of probs          (per head and query temporal window)

then exact attention runs inside the kept 128x128 block pairs; a query block that keeps no key block
outputs zeros. Two exact kernels are provided: ``dense`` (token mask + SDPA, the reference) and
``flex`` (FlexAttention with a BlockMask; compiled on CUDA, the eager reference path on CPU). On CUDA the flex
backend's calls over one key tensor attend on the block lists through the kernel :func:`set_block_kernels` picks:
FlashAttention 4's Hopper kernel where ``flash-attn-4`` is installed (:mod:`~streamvsr.models.flashvsr.fa4`), else
FlexAttention (or our Triton kernel, on request).

Attention tensors here are ``(B, heads, L, d)`` with L in block order.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from streamvsr.models.flashvsr.config import AttentionConfig

__all__ = [
    "KVCache",
    "SharedKVCache",
    "SparsePlan",
    "attend_block_lists",
    "block_lists",
    "block_means",
    "causal_window_visibility",
    "dense_block_attention",
    "flex_block_attention",
    "from_block_order",
    "full_attention",
    "get_block_kernels",
    "get_flex_block_order",
    "get_flex_options",
    "get_radix_select",
    "kth_largest",
    "lcsa_attention",
    "local_block_mask",
    "make_plan",
    "merge_partial_attention",
    "resolve_backend",
    "select_block_lists",
    "select_blocks",
    "set_block_kernels",
    "set_flex_block_order",
    "set_flex_options",
    "set_radix_select",
    "sparse_topk",
    "to_block_order",
    "topk_select",
    "topk_threshold",
    "window_fill",
    "window_padded_grid",
    "window_partition",
    "window_reverse",
]


# ----------------------------------------------------------------------------------------------
# Layout
# ----------------------------------------------------------------------------------------------


def window_partition(x: torch.Tensor, grid: tuple[int, int, int], window: tuple[int, int, int]) -> torch.Tensor:
    """(B, f*h*w, *C) in (f, h, w) order -> (B, f*h*w, *C) in block order."""
    f, h, w = grid
    wt, wh, ww = window
    B, rest = x.shape[0], x.shape[2:]
    x = x.reshape(B, f // wt, wt, h // wh, wh, w // ww, ww, *rest)
    perm = (0, 1, 3, 5, 2, 4, 6, *range(7, 7 + len(rest)))
    return x.permute(perm).reshape(B, f * h * w, *rest)


def window_reverse(x: torch.Tensor, grid: tuple[int, int, int], window: tuple[int, int, int]) -> torch.Tensor:
    """Inverse of :func:`window_partition`."""
    f, h, w = grid
    wt, wh, ww = window
    B, rest = x.shape[0], x.shape[2:]
    x = x.reshape(B, f // wt, h // wh, w // ww, wt, wh, ww, *rest)
    perm = (0, 1, 4, 2, 5, 3, 6, *range(7, 7 + len(rest)))
    return x.permute(perm).reshape(B, f * h * w, *rest)


def _permute_window_blocks(x: torch.Tensor, window: tuple[int, int, int], idx: torch.Tensor) -> torch.Tensor:
    """x (B, L, ...) in block order: within every temporal window, block i takes block ``idx[i]``'s tokens."""
    B, L, rest = x.shape[0], x.shape[1], x.shape[2:]
    blk = window[0] * window[1] * window[2]
    return x.reshape(B, L // (idx.numel() * blk), idx.numel(), blk, *rest)[:, :, idx].reshape(B, L, *rest)


def to_block_order(
    x: torch.Tensor, grid: tuple[int, int, int], window: tuple[int, int, int], order: torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`window_partition`, then each temporal window's blocks in ``order`` ((nb,) long, the plan's
    :attr:`SparsePlan.order`; None keeps the grid's row-major order)."""
    y = window_partition(x, grid, window)
    return y if order is None else _permute_window_blocks(y, window, order)


def from_block_order(
    x: torch.Tensor, grid: tuple[int, int, int], window: tuple[int, int, int], order: torch.Tensor | None = None
) -> torch.Tensor:
    """Inverse of :func:`to_block_order`."""
    if order is not None:
        x = _permute_window_blocks(x, window, torch.argsort(order))
    return window_reverse(x, grid, window)


def window_padded_grid(grid: tuple[int, int, int], window: tuple[int, int, int]) -> tuple[int, int, int]:
    """The token grid (f, h, w) with h and w rounded up to whole windows (f is left as it is)."""
    f, h, w = grid
    return f, -(-h // window[1]) * window[1], -(-w // window[2]) * window[2]


def _reflect_index(n: int, size: int, device: torch.device | str) -> torch.Tensor:
    """(n,) long: i for i < size, beyond it the mirror image without repeating the edge (as ``F.pad``'s reflect:
    size, size + 1, ... -> size - 2, size - 3, ...), folded again for pads longer than the axis."""
    i = torch.arange(n, device=device)
    if size == 1:
        return torch.zeros_like(i)
    i = i % (2 * size - 2)
    return torch.where(i < size, i, 2 * size - 2 - i)


def window_fill(
    grid: tuple[int, int, int],
    window: tuple[int, int, int],
    order: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Index maps for a token grid (f, h, w) whose h or w is not a multiple of the window's: the DiT runs its
    per-token work (projections, norms, FFN, cross-attention) on the f*h*w real tokens only, and attention on
    the grid padded to whole windows (:func:`window_padded_grid`), where each padding position holds a mirror
    image of a real token's q, k and v (reflection at the bottom and right edges, as the engine's reflect
    padding of the frames, but per layer and in token space). Returns, with Lc = f*h*w and L the padded count:

    * ``take`` (Lc,): the natural-order token of each compact position (compact = block order without the
      padding positions): ``x_c = x[:, take]``;
    * ``fill`` (L,): the compact token whose q, k, v each padded block-order position holds: ``q = q_c[:, fill]``;
    * ``real`` (Lc,): the block-order position of each compact token: ``out_c = out[:, real]``;
    * ``back`` (Lc,): the compact position of each natural-order token: ``x = x_c[:, back]``.

    ``order``: the plan's order of a window's blocks (see :func:`to_block_order`)."""
    f, h, w = grid
    _, hp, wp = padded = window_padded_grid(grid, window)
    ry, rx = _reflect_index(hp, h, device), _reflect_index(wp, w, device)
    t = torch.arange(f, device=device)
    src = (t[:, None, None] * h + ry[None, :, None]) * w + rx[None, None, :]  # (f, hp, wp) natural real index
    inside = (torch.arange(hp, device=device) < h)[:, None] & (torch.arange(wp, device=device) < w)[None, :]
    src_b = to_block_order(src.reshape(1, -1, 1), padded, window, order)[0, :, 0]  # (L,)
    inside_b = to_block_order(inside.expand(f, hp, wp).reshape(1, -1, 1), padded, window, order)[0, :, 0]
    real = torch.nonzero(inside_b).flatten()  # (Lc,) increasing
    take = src_b[real]
    back = torch.empty_like(take)
    back[take] = torch.arange(take.numel(), device=device)
    return take, back[src_b], real, back


def block_means(x: torch.Tensor, block: int) -> torch.Tensor:
    """(B, H, n*block, d) -> (B, H, n, d) mean per block, in the input dtype."""
    B, H, L, d = x.shape
    return x.reshape(B, H, L // block, block, d).mean(dim=3)


# ----------------------------------------------------------------------------------------------
# Masks and top-k
# ----------------------------------------------------------------------------------------------


def local_block_mask(bh: int, bw: int, local_range: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Boundary-truncated local mask on a (bh, bw) block grid: (bh*bw, bh*bw) bool.

    Query block (r, c) may use key block (r', c') iff r - R//2 <= r' <= r - R//2 + R - 1 (same for columns).
    """
    half = local_range // 2
    r = torch.arange(bh, device=device)
    c = torch.arange(bw, device=device)
    dr = r[None, :] - (r[:, None] - half)  # (bh, bh): r' - lower bound
    dc = c[None, :] - (c[:, None] - half)
    mr = (dr >= 0) & (dr < local_range)
    mc = (dc >= 0) & (dc < local_range)
    m = mr[:, None, :, None] & mc[None, :, None, :]  # (bh, bw, bh, bw)
    return m.reshape(bh * bw, bh * bw)


def sparse_topk(nb: int, out_h: int, out_w: int, sparse_ratio: float) -> int:
    """topk = int(Nb^2 * sparse_ratio * 768 * 1280 / (H * W)) - 1 with H, W the output pixel size."""
    topk_ratio = sparse_ratio * 768 * 1280 / (out_h * out_w)
    return int(nb * nb * topk_ratio) - 1


def causal_window_visibility(
    n_windows: int, kv_windows: int, first_windows: int = 3, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(n, n) bool: key windows a query window sees under the streaming policy.

    The first ``first_windows`` windows (call 0) see each other; window i >= first_windows sees windows
    i - kv_windows ... i (the KV cache plus itself).
    """
    i = torch.arange(n_windows, device=device)[:, None]
    j = torch.arange(n_windows, device=device)[None, :]
    first = (i < first_windows) & (j < first_windows)
    later = (i >= first_windows) & (j <= i) & (j >= i - kv_windows)
    return first | later


def kth_largest(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th largest value along the last dim, keepdim: (..., n) -> (..., 1).

    The smallest of the k largest values is the k-th largest, ties included, so the top k need no sort
    (a sorted top-k of thousands of values per row costs a segmented sort on the GPU). ``torch.kthvalue`` gives
    the same value but was slower at 1080p on an H100 (scripts/topk_micro.py, docs/performance.md)."""
    return torch.topk(x, k, dim=-1, sorted=False).values.amin(dim=-1, keepdim=True)


_RADIX_SELECT: tuple[bool, int | str | None] = (True, "auto")  # see set_radix_select


def set_radix_select(on: bool, segment: int | str | None = "auto") -> None:
    """Whether :func:`topk_select` finds its thresholds with the Triton radix select on CUDA
    (:mod:`~streamvsr.models.flashvsr.radix_select`; the same values as ``torch.topk``), and with rows split into
    pieces of ``segment`` values (None: one program per row; "auto", the default: the measured faster form by row
    length). On by default where it can run (CUDA with Triton; elsewhere ``torch.topk``): on an H100 it took 55
    instead of 103 us per layer at 768x1408 and 122 instead of 133 at 1080p, and the pipeline's path with it and
    the TCDecoder's sub-pixel upsampling ran 1.4% and 0.8% faster end to end (docs/performance.md, seventh session
    of 2026-11-27)."""
    global _RADIX_SELECT
    _RADIX_SELECT = (bool(on), segment)


def get_radix_select() -> tuple[bool, int | str | None]:
    """(on, segment) as :func:`set_radix_select` set them."""
    return _RADIX_SELECT


def _threshold(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th largest along the last dim, keepdim; k is at most the count of non-negative entries per row."""
    on, segment = _RADIX_SELECT
    if on:
        from streamvsr.models.flashvsr import radix_select

        if radix_select.available(x):
            return radix_select.kth_largest_rows(x, k, segment=segment)
    return kth_largest(x, k)


def topk_threshold(
    probs: torch.Tensor, nb: int, topk: int, window_visible: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The scores and thresholds of :func:`topk_select`: (flat (B, H, nqw, nb * Nk) with invisible key windows
    at -1, thr (B, H, nqw, 1)); the kept block pairs are ``flat > thr``. flat's memory is (B, H, Nq, Nk)."""
    B, H, Nq, Nk = probs.shape
    nqw, nkw = Nq // nb, Nk // nb
    p = probs.reshape(B, H, nqw, nb, nkw, nb)
    if window_visible is None:
        flat = p.reshape(B, H, nqw, nb * Nk)
        k = max(0, min(topk, nb * Nk - 1))
        return flat, _threshold(flat, k + 1)
    vis_host = window_visible.cpu()  # small; k per query window is computed on the host (no device sync)
    vis = window_visible.to(probs.device)
    p = p.masked_fill(~vis[None, None, :, None, :, None], -1.0)
    flat = p.reshape(B, H, nqw, nb * Nk)
    ks = [max(0, min(topk, int(n) * nb * nb - 1)) for n in vis_host.sum(-1).tolist()]
    # one threshold per query window (a steady streaming call has one window: one top-k)
    thr = torch.cat([_threshold(flat[:, :, i : i + 1], k + 1) for i, k in enumerate(ks)], dim=2)  # (B, H, nqw, 1)
    return flat, thr


def topk_select(probs: torch.Tensor, nb: int, topk: int, window_visible: torch.Tensor | None = None) -> torch.Tensor:
    """Global top-k per (batch, head, query temporal window).

    probs: (B, H, Nq, Nk) fp32 with Nq = nqw * nb and Nk = nkw * nb (key windows of nb blocks each).
    window_visible: optional (nqw, nkw) bool; invisible key windows are never selected and do not
    count towards Nk. k = min(topk, nb * visible_key_blocks - 1); the threshold is the (k+1)-th largest
    value; entries strictly greater than it are kept. Returns (B, H, Nq, Nk) bool.
    """
    flat, thr = topk_threshold(probs, nb, topk, window_visible)
    return (flat > thr).reshape(probs.shape)


@dataclass(frozen=True)
class SparsePlan:
    """Per-resolution constants shared by all layers of one forward: grid, topk, local mask, backend."""

    bh: int  # block rows (h / 8)
    bw: int  # block columns (w / 8)
    nb: int  # blocks per temporal window
    block: int  # tokens per block (128)
    topk: int
    local: torch.Tensor | None  # (nb, nb) bool, None = no local constraint
    sparse: bool
    backend: str  # "dense" | "flex" | "full"
    # the order of a window's blocks in the token sequence, (nb,) long (None: the grid's row-major order); ``local``
    # is given in this order (see make_plan)
    order: torch.Tensor | None = None
    # what ``order`` follows from, hashable without reading the device: (bh, bw, local range) or None (no order)
    order_key: tuple[int, int, int] | None = None
    # the local mask as an additive score bias per (query windows, key windows), built once per plan: every layer
    # of a forward shares it (a plan lives for one forward)
    biases: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict, compare=False, repr=False)

    def local_bias(self, nqw: int, nkw: int, device: torch.device) -> torch.Tensor:
        """(nqw*nb, nkw*nb) float32: 0 where the local mask keeps a block pair, -inf elsewhere."""
        bias = self.biases.get((nqw, nkw))
        if bias is None:
            nq, nk = nqw * self.nb, nkw * self.nb
            bias = torch.zeros(nq, nk, dtype=torch.float32, device=device)
            if self.local is not None:
                bias.masked_fill_(~self.local.to(device).repeat(nqw, nkw), float("-inf"))
            self.biases[(nqw, nkw)] = bias
        return bias


def resolve_backend(backend: str, device: torch.device) -> str:
    """'auto' -> 'flex' on CUDA, 'dense' elsewhere."""
    if backend == "auto":
        return "flex" if device.type == "cuda" else "dense"
    return backend


def make_plan(h: int, w: int, attn: AttentionConfig, device: torch.device, patch_px: int = 16) -> SparsePlan:
    """Plan for a token grid of h x w (output pixels = h*patch_px x w*patch_px)."""
    wt, wh, ww = attn.window
    if h % wh or w % ww:
        raise ValueError(f"token grid {h}x{w} is not a multiple of the window {wh}x{ww}")
    bh, bw = h // wh, w // ww
    nb = bh * bw
    topk = sparse_topk(nb, h * patch_px, w * patch_px, attn.sparse_ratio)
    local = local_block_mask(bh, bw, attn.local_range, device) if attn.sparse else None
    backend = resolve_backend(attn.backend, device)
    order = None
    if local is not None and backend == "flex" and _FEWEST_VISIBLE_FIRST:
        order = torch.argsort(local.sum(-1), stable=True)  # fewest visible key blocks first
        local = local[order][:, order]
    return SparsePlan(
        bh=bh,
        bw=bw,
        nb=nb,
        block=wt * wh * ww,
        topk=topk,
        local=local,
        sparse=attn.sparse,
        backend=backend,
        order=order,
        order_key=None if order is None else (bh, bw, attn.local_range),
    )


_FEWEST_VISIBLE_FIRST = True  # see set_flex_block_order


def set_flex_block_order(fewest_visible_first: bool) -> None:
    """Whether plans for the flex backend put each window's blocks in order of their count of visible key blocks
    under the local mask, fewest first (the default), instead of the grid's row-major order. The selection is a set
    and attention ignores key order, so only the order of the work changes (and float rounding).

    Why: FlexAttention runs one thread block per (query block, head), started in launch order as SMs free up, and
    the selected key blocks per query block vary (55 to 153 of 264 at 768x1408 for random block means,
    scripts/qblock_balance.py). A query block that sees fewer key blocks gets more of the window's top-k (its softmax
    spreads over fewer blocks: the counts correlate at -0.88 with the visible counts), so fewest visible first puts
    the long ones first and leaves the short ones for the last wave. Row-major order leaves long ones at the end.
    The order is fixed per resolution, so the DiT applies it once per chunk with its block order (no per-layer
    gather). On an H100 the kernel alone on query blocks sorted by their count took 1.722 against 1.809 to 1.834 ms
    at 768x1408, and this order gave +1.7% end to end with the block means from the projection step
    (docs/performance.md, sixth session of 2026-11-27)."""
    global _FEWEST_VISIBLE_FIRST
    _FEWEST_VISIBLE_FIRST = bool(fewest_visible_first)


def get_flex_block_order() -> bool:
    """See :func:`set_flex_block_order`."""
    return _FEWEST_VISIBLE_FIRST


def _selection_probs(
    q_means: torch.Tensor, k_means: torch.Tensor, plan: SparsePlan, window_visible: torch.Tensor | None
) -> torch.Tensor:
    """softmax(mean(q_blk) . mean(k_blk) / sqrt(d) + local mask) over key blocks: (B, H, Nq, Nk) fp32."""
    d = q_means.shape[-1]
    nqw, nkw = q_means.shape[2] // plan.nb, k_means.shape[2] // plan.nb
    scores = torch.einsum("bhqd,bhkd->bhqk", q_means, k_means) / math.sqrt(d)  # working dtype
    bias = plan.local_bias(nqw, nkw, q_means.device)  # (Nq, Nk), shared by the forward's layers
    if window_visible is not None:
        wv = window_visible.to(q_means.device).repeat_interleave(plan.nb, 0).repeat_interleave(plan.nb, 1)
        bias = bias.masked_fill(~wv, float("-inf"))
    return torch.softmax(scores.float() + bias, dim=-1)


def select_blocks(
    q_means: torch.Tensor,
    k_means: torch.Tensor,
    plan: SparsePlan,
    window_visible: torch.Tensor | None = None,
) -> torch.Tensor:
    """Block mask (B, H, Nq, Nk) bool from block means (B, H, Nq|Nk, d) in the working dtype."""
    B, H, Nq, d = q_means.shape
    Nk = k_means.shape[2]
    nqw, nkw = Nq // plan.nb, Nk // plan.nb
    if not plan.sparse:
        vis = torch.ones(nqw, nkw, dtype=torch.bool, device=q_means.device)
        if window_visible is not None:
            vis = window_visible.to(q_means.device)
        m = vis.repeat_interleave(plan.nb, 0).repeat_interleave(plan.nb, 1)
        return m[None, None].expand(B, H, Nq, Nk)
    return topk_select(_selection_probs(q_means, k_means, plan, window_visible), plan.nb, plan.topk, window_visible)


def select_block_lists(
    q_means: torch.Tensor,
    k_means: torch.Tensor,
    plan: SparsePlan,
    window_visible: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`block_lists` of :func:`select_blocks`: (num (B, H, Nq) int32, idx (B, H, Nq, Nk) int32). On CUDA
    with the block kernels on (:func:`set_block_kernels`) one Triton kernel turns the scores and thresholds into the
    lists (:func:`~streamvsr.models.flashvsr.block_kernels.compact_block_lists`, the same values)."""
    if plan.sparse and _BLOCK_KERNELS[0]:
        from streamvsr.models.flashvsr import block_kernels

        if block_kernels.available(q_means):
            probs = _selection_probs(q_means, k_means, plan, window_visible)
            flat, thr = topk_threshold(probs, plan.nb, plan.topk, window_visible)
            return block_kernels.compact_block_lists(flat.reshape(probs.shape), thr, plan.nb)
    return block_lists(select_blocks(q_means, k_means, plan, window_visible))


_BLOCK_KERNELS: tuple[bool, str, dict] = (True, "auto", {})  # see set_block_kernels
_ATTENTION_KERNELS = ("auto", "flex", "triton", "fa4")


def set_block_kernels(lists: bool, attention: str = "auto", options: dict | None = None) -> None:
    """The kernels the flex backend uses on CUDA for a call over one key tensor (the steady streaming step).

    ``lists``: our Triton kernel builds the block lists from the selection's scores
    (:func:`~streamvsr.models.flashvsr.block_kernels.compact_block_lists`) instead of a comparison and
    :func:`block_lists`. ``attention``: which kernel attends over those lists:

    - ``"auto"`` (default): FlashAttention 4's Hopper kernel where :func:`~streamvsr.models.flashvsr.fa4.eligible`
      (``flash-attn-4`` installed, compute capability 9.x, bf16/fp16, heads of 128, inference), else FlexAttention;
    - ``"flex"``: FlexAttention;
    - ``"triton"``: our block-sparse kernel (:mod:`~streamvsr.models.flashvsr.block_kernels`), its programs started
      longest first (``options``: its ``num_warps`` / ``num_stages`` / ``use_tma`` / ``block_n``, and
      ``longest_first`` False for programs in (head, query block) order);
    - ``"fa4"``: as ``"auto"``, but the package must be installed (ValueError otherwise).

    Where a kernel cannot run (no Triton, no CUDA, a call it is not eligible for) FlexAttention runs.

    Measured on an H100 (docs/performance.md): ``lists`` on gives the same lists in 0.067 instead of 0.148 ms
    per layer at 768x1408 (+1.0% and +1.8% end to end at 768x1408 and 1080p; tenth session of 2026-11-27). Inside
    the model FlexAttention's kernel took 1.60 ms per call and ours 1.70 (Nsight Compute, eleventh session), so
    ``"triton"`` is not the default; FlashAttention 4's took 1.08 ms against FlexAttention's 1.89 on one captured
    steady call (twelfth session)."""
    global _BLOCK_KERNELS
    if attention not in _ATTENTION_KERNELS:
        raise ValueError(f"attention kernel {attention!r} is not one of {_ATTENTION_KERNELS}")
    if attention == "fa4":
        from streamvsr.models.flashvsr import fa4

        if not fa4.installed():
            raise ValueError("the attention kernel 'fa4' needs flash-attn-4 (pip install flash-attn-4)")
    _BLOCK_KERNELS = (bool(lists), attention, dict(options or {}))


def get_block_kernels() -> tuple[bool, str, dict]:
    """(lists, attention, options) as :func:`set_block_kernels` set them."""
    return _BLOCK_KERNELS[0], _BLOCK_KERNELS[1], dict(_BLOCK_KERNELS[2])


def attend_block_lists(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num: torch.Tensor, idx: torch.Tensor, block: int
) -> torch.Tensor:
    """Block-sparse attention of q (B, H, Lq, d) over k, v (B, H, Lk, d) on the block lists (num, idx) of
    :func:`select_block_lists`, by the kernel :func:`set_block_kernels` chose (CUDA)."""
    _, kernel, options = _BLOCK_KERNELS
    if kernel in ("auto", "fa4"):
        from streamvsr.models.flashvsr import fa4

        if fa4.eligible(q, k, block):
            out = fa4.block_sparse_attention(q, k, v, num, idx, block)
            if out is not None:
                return out
    if kernel == "triton":
        from streamvsr.models.flashvsr import block_kernels

        if block_kernels.available(q):
            opts = dict(options)
            order = block_kernels.longest_first(num) if opts.pop("longest_first", True) else None
            return block_kernels.block_sparse_attention(q, k, v, num, idx, block, order, **opts)
    return flex_block_attention(q, k, v, None, block, lists=(num, idx))


# ----------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------


def full_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Plain SDPA; ``mask`` (bool, broadcastable to (B, H, Lq, Lk)) True = attend."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def dense_block_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    block_mask: torch.Tensor,
    block: int = 128,
    group: int = 8,
) -> torch.Tensor:
    """Reference kernel: masked SDPA over the selected 128x128 block pairs, exact.

    Per head and per group of ``group`` query blocks, only the key blocks that some query of the group
    selected are gathered, and the block mask is expanded to tokens over those alone: memory is bounded by
    ``group * 128`` query rows, and the locality of LCSA (neighbouring query blocks share their key
    windows) skips most key blocks at high resolution. Query blocks with no key block give zeros (never
    NaN, also in backward).
    """
    B, H, Lq, d = q.shape
    nq, nk = Lq // block, k.shape[2] // block
    empty = ~block_mask.any(-1)  # (B, H, Nq)
    bm = block_mask | empty[..., None]  # attend everywhere in empty rows, zero them afterwards
    qb = q.reshape(B, H, nq, block, d)
    kb = k.reshape(B, H, nk, block, d)
    vb = v.reshape(B, H, nk, block, d)
    heads = []
    for h in range(H):
        parts = []
        for g0 in range(0, nq, group):
            sel = bm[:, h, g0 : g0 + group]  # (B, G, Nk)
            g = sel.shape[1]
            used = sel.any(dim=1).any(dim=0).nonzero().squeeze(1)  # key blocks some query of the group uses
            ks = kb[:, h, used].reshape(B, 1, -1, d)
            vs = vb[:, h, used].reshape(B, 1, -1, d)
            tok = sel[:, :, None, used, None].expand(-1, -1, block, -1, block)
            tok = tok.reshape(B, 1, g * block, used.numel() * block)
            qs = qb[:, h, g0 : g0 + g].reshape(B, 1, g * block, d)
            parts.append(F.scaled_dot_product_attention(qs, ks, vs, tok))
        heads.append(torch.cat(parts, dim=2))
    out = torch.cat(heads, dim=1)
    keep = (~empty).repeat_interleave(block, dim=2)[..., None]
    return out * keep.to(out.dtype)


_FLEX_COMPILED = None
_FLEX_OPTIONS: dict | None = None  # FlexKernelOptions of the compiled kernel; None = PyTorch's choice
_FLEX_MODE: str | None = None  # torch.compile mode of the compiled kernel


def set_flex_options(kernel_options: dict | None = None, mode: str | None = None) -> None:
    """Tune the compiled FlexAttention kernel (CUDA): ``kernel_options`` are FlexAttention's
    ``FlexKernelOptions`` (``BLOCK_M``, ``BLOCK_N``, ``num_warps``, ``num_stages``, ``USE_TMA``, ...);
    ``mode`` is the torch.compile mode (``"max-autotune-no-cudagraphs"`` lets Inductor pick the kernel's
    configuration by timing). None restores the defaults. The eager path (CPU) ignores both, and calls that
    need gradients ignore the kernel options (they were measured for inference only)."""
    global _FLEX_COMPILED, _FLEX_OPTIONS, _FLEX_MODE
    _FLEX_OPTIONS = dict(kernel_options) if kernel_options else None
    _FLEX_MODE = mode
    _FLEX_COMPILED = None
    _FLEX_RUNNERS.clear()


def get_flex_options() -> tuple[dict | None, str | None]:
    """The compiled FlexAttention's kernel options and compile mode (see :func:`set_flex_options`)."""
    return (dict(_FLEX_OPTIONS) if _FLEX_OPTIONS else None), _FLEX_MODE


_FLEX_GRAPHS: set = set()  # the (shapes, strides, dtype, lse) the compiled FlexAttention has seen in this process


def _admit_flex_graph(signature: tuple) -> None:
    """Keep Dynamo's recompile limit above the compiled FlexAttention's graph count (one per shape and layout: a
    stream's first call, the steady calls and the ring's wrap, per resolution). Past the limit Dynamo would run
    flex_attention eagerly, and its eager path ignores the block lists: the attention would silently go dense."""
    import torch._dynamo

    _FLEX_GRAPHS.add(signature)
    cfg = torch._dynamo.config
    cfg.recompile_limit = max(cfg.recompile_limit, len(_FLEX_GRAPHS) + 8)


class FlexLists(nn.Module):
    """FlexAttention over block lists as one function of plain tensors, the BlockMask built inside it: the form a
    compiler hook (:func:`set_flex_compiler`) compiles. A compiled graph with a BlockMask argument can be saved but
    not loaded again (PyTorch 2.13; docs/performance.md, fourteenth session of 2026-11-27); one of the lists can.

    ``kernel_options``: FlexAttention's kernel options as sorted (name, value) pairs (a plain attribute, part of
    what identifies the compiled function)."""

    def __init__(self, block: int, return_lse: bool, kernel_options: tuple = ()) -> None:
        super().__init__()
        self.block = block
        self.return_lse = return_lse
        self.kernel_options = tuple(kernel_options)

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num: torch.Tensor, idx: torch.Tensor
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """q (B, H, Lq, d), k and v (B, H, Lk, d); num (B, H, Nq) and idx (B, H, Nq, Nk) int32 (:func:`block_lists`)."""
        from torch.nn.attention.flex_attention import BlockMask, flex_attention

        bmask = BlockMask.from_kv_blocks(
            torch.zeros_like(num),
            torch.zeros_like(idx),
            num,
            idx,
            BLOCK_SIZE=self.block,
            seq_lengths=(q.shape[2], k.shape[2]),
            compute_q_blocks=False,  # inference only: the hook is not used where gradients are needed
        )
        opts: dict = {"kernel_options": dict(self.kernel_options)} if self.kernel_options else {}
        if self.return_lse:
            opts["return_lse"] = True
        return flex_attention(q, k, v, block_mask=bmask, **opts)


_FLEX_COMPILER: Callable[[nn.Module], Callable] | None = None  # see set_flex_compiler
_FLEX_RUNNERS: dict[tuple, Callable] = {}  # (block, lse) -> the hook's compiled FlexLists (emptied by the setters)


def set_flex_compiler(compiler: Callable[[nn.Module], Callable] | None) -> None:
    """A hook for the compiled FlexAttention of inference calls: ``compiler(module)`` gets a :class:`FlexLists` and
    returns a callable that runs its ``forward`` compiled (with :func:`get_flex_options`'s mode), e.g. one whose
    graphs are kept on disk (the pipeline's). None (the default) restores the built-in ``torch.compile`` of
    ``flex_attention``. Calls that need gradients always take the built-in one."""
    global _FLEX_COMPILER
    _FLEX_COMPILER = compiler
    _FLEX_RUNNERS.clear()


def get_flex_compiler() -> Callable[[nn.Module], Callable] | None:
    """The hook of :func:`set_flex_compiler` (None: the built-in compile)."""
    return _FLEX_COMPILER


def _flex_runner(block: int, return_lse: bool) -> Callable:
    """The hook's compiled FlexLists for these settings and the current kernel options (made once: the options
    and the hook can only change through set_flex_options and set_flex_compiler, which empty the table)."""
    run = _FLEX_RUNNERS.get((block, return_lse))
    if run is None:
        opts = tuple(sorted(_FLEX_OPTIONS.items())) if _FLEX_OPTIONS else ()
        run = _FLEX_RUNNERS[(block, return_lse)] = _FLEX_COMPILER(FlexLists(block, return_lse, opts))
    return run


def _flex_fn(compiled: bool):
    from torch.nn.attention.flex_attention import flex_attention

    if not compiled:
        return flex_attention
    global _FLEX_COMPILED
    if _FLEX_COMPILED is None:
        _FLEX_COMPILED = torch.compile(flex_attention, dynamic=False, mode=_FLEX_MODE)
    return _FLEX_COMPILED


def flex_block_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    block_mask: torch.Tensor | None,
    block: int = 128,
    compiled: bool | None = None,
    return_lse: bool = False,
    lists: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """FlexAttention kernel with a BlockMask of full 128x128 blocks; empty query blocks give zeros.

    compiled: default True on CUDA. The eager path (CPU) materialises the scores through a mask_mod
    equal to the block mask (FlexAttention's unfused reference implementation).
    return_lse: also return the log-sum-exp of each query row's scores (B, H, Lq) fp32, natural log;
    -inf for rows without any key block.
    lists: the block mask as its :func:`block_lists` (num, idx) instead (``block_mask`` None; compiled only).
    """
    from torch.nn.attention.flex_attention import BlockMask

    if compiled is None:
        compiled = q.device.type == "cuda"
    Lq, Lk = q.shape[2], k.shape[2]
    if lists is not None:
        if not compiled:
            raise ValueError("FlexAttention's eager path needs the block mask, not its lists")
        num, idx = lists
    else:
        bm = block_mask.contiguous()
        num, idx = block_lists(bm)  # (B, H, Nq), (B, H, Nq, Nk): selected first
    needs_grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
    if compiled and _FLEX_COMPILER is not None and not needs_grad:
        _admit_flex_graph((q.shape, q.stride(), k.shape, k.stride(), v.stride(), q.dtype, return_lse))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*return_lse is deprecated.*")
            return _flex_runner(block, return_lse)(q, k, v, num, idx)
    zeros_num = torch.zeros_like(num)
    zeros_idx = torch.zeros_like(idx)

    mask_mod = None
    if not compiled:  # FlexAttention's eager path ignores the block lists and applies mask_mod alone

        def mask_mod(b, h, q_idx, kv_idx):  # noqa: ANN001, ANN202 - FlexAttention signature
            return bm[b, h, q_idx // block, kv_idx // block]

    else:  # the compiled kernel takes every listed block as a full block; a mask_mod costs shared memory
        _admit_flex_graph((q.shape, q.stride(), k.shape, k.stride(), v.stride(), q.dtype, return_lse))

    bmask = BlockMask.from_kv_blocks(
        zeros_num,
        zeros_idx,
        num,
        idx,
        BLOCK_SIZE=block,
        mask_mod=mask_mod,
        seq_lengths=(Lq, Lk),
        compute_q_blocks=needs_grad,  # the transposed (q-major) indices are only used by backward
    )
    fn = _flex_fn(compiled)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")
        warnings.filterwarnings("ignore", message=".*return_lse is deprecated.*")
        # the options were measured for inference: a call that needs gradients (training) keeps the defaults
        tuned = compiled and _FLEX_OPTIONS and not needs_grad
        opts = {"kernel_options": _FLEX_OPTIONS} if tuned else {}
        if return_lse:
            opts["return_lse"] = True
        out = fn(q, k, v, block_mask=bmask, **opts)
    # FlexAttention writes 0 for rows without any key block (lse = -inf); tested in both modes.
    return out


def block_lists(block_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, H, Nq, Nk) bool -> per query block the count of kept key blocks (B, H, Nq) int32 and their
    indices (B, H, Nq, Nk) int32, kept ones first in ascending order (the rest are the dropped ones)."""
    num = block_mask.sum(-1, dtype=torch.int32)
    idx = torch.argsort((~block_mask).to(torch.int8), dim=-1, stable=True).to(torch.int32)
    return num, idx


def merge_partial_attention(outs: list[torch.Tensor], lses: list[torch.Tensor]) -> torch.Tensor:
    """Softmax attention over a key set split into pieces, from each piece's result.

    outs[i] (B, H, L, d) is the attention of the queries over piece i alone and lses[i] (B, H, L) its
    log-sum-exp (-inf where a row saw no key of the piece). With lse = log sum_i exp(lses[i]),
    out = sum_i exp(lses[i] - lse) * outs[i], which is exactly the attention over all pieces at once.
    Rows that saw no key in any piece give zeros. Computed in fp32, returned in the dtype of outs[0].
    """
    lse = torch.stack(lses).float()  # (P, B, H, L)
    top = lse.amax(0)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))  # all -inf: weights 0, not NaN
    w = torch.exp(lse - top)  # (P, B, H, L)
    w = w / w.sum(0).clamp_min(torch.finfo(torch.float32).tiny)
    out = outs[0].float() * w[0, ..., None]
    for i in range(1, len(outs)):
        out = out + outs[i].float() * w[i, ..., None]
    return out.to(outs[0].dtype)


_MERGE_COMPILED = None


def flex_block_attention_pieces(
    q: torch.Tensor,
    ks: tuple[torch.Tensor, ...],
    vs: tuple[torch.Tensor, ...],
    block_mask: torch.Tensor,
    block: int = 128,
    compiled: bool | None = None,
) -> torch.Tensor:
    """:func:`flex_block_attention` over keys given in pieces along the key axis (the KV cache's ring and
    this chunk's new keys), without concatenating them: one kernel per piece, merged through the
    log-sum-exp (:func:`merge_partial_attention`). block_mask (B, H, Nq, sum of the pieces' blocks) covers
    the pieces in order."""
    if compiled is None:
        compiled = q.device.type == "cuda"
    outs, lses, start = [], [], 0
    for k, v in zip(ks, vs, strict=True):
        nk = k.shape[2] // block
        o, lse = flex_block_attention(q, k, v, block_mask[..., start : start + nk], block, compiled, return_lse=True)
        outs.append(o)
        lses.append(lse)
        start += nk
    if start != block_mask.shape[-1]:
        raise ValueError(f"the key pieces hold {start} blocks, the block mask {block_mask.shape[-1]}")
    merge = merge_partial_attention
    if compiled:
        global _MERGE_COMPILED
        if _MERGE_COMPILED is None:
            _MERGE_COMPILED = torch.compile(merge_partial_attention, dynamic=False)
        merge = _MERGE_COMPILED
    return merge(outs, lses)


def lcsa_attention(
    q: torch.Tensor,
    k: torch.Tensor | tuple[torch.Tensor, ...],
    v: torch.Tensor | tuple[torch.Tensor, ...],
    plan: SparsePlan,
    window_visible: torch.Tensor | None = None,
    k_means: torch.Tensor | None = None,
    q_means: torch.Tensor | None = None,
) -> torch.Tensor:
    """LCSA on block-ordered q (B, H, Lq, d), k/v (B, H, Lk, d). Returns (B, H, Lq, d).

    k and v may also be tuples of pieces along the key axis (see :meth:`KVCache.append`): the flex backend
    attends over them without concatenating; the others concatenate first.
    """
    if isinstance(k, tuple):
        if k_means is None:
            k_means = torch.cat([block_means(x, plan.block) for x in k], dim=2)
        if plan.backend == "flex":
            if q_means is None:
                q_means = block_means(q, plan.block)
            bm = select_blocks(q_means, k_means, plan, window_visible)
            return flex_block_attention_pieces(q, k, v, bm, plan.block)  # type: ignore[arg-type]
        k, v = torch.cat(k, dim=2), torch.cat(v, dim=2)  # type: ignore[arg-type]
    if plan.backend == "full":
        mask = None
        if window_visible is not None:
            n = plan.nb * plan.block
            mask = window_visible.to(q.device).repeat_interleave(n, 0).repeat_interleave(n, 1)
        return full_attention(q, k, v, mask)
    if q_means is None:
        q_means = block_means(q, plan.block)
    if k_means is None:
        k_means = block_means(k, plan.block)
    if plan.backend == "flex":
        from streamvsr.models.flashvsr import block_kernels

        if not block_kernels.available(q):  # FlexAttention's eager path (CPU) reads the mask, not the lists
            return flex_block_attention(q, k, v, select_blocks(q_means, k_means, plan, window_visible), plan.block)
        num, idx = select_block_lists(q_means, k_means, plan, window_visible)  # by our kernel where set
        return attend_block_lists(q, k, v, num, idx, plan.block)
    bm = select_blocks(q_means, k_means, plan, window_visible)
    if plan.backend == "dense":
        return dense_block_attention(q, k, v, bm, plan.block)
    raise ValueError(f"unknown attention backend {plan.backend!r}")


# ----------------------------------------------------------------------------------------------
# KV cache
# ----------------------------------------------------------------------------------------------


def _copy_window(
    rings: tuple[torch.Tensor, ...], per: tuple[int, ...], slot: int, src: tuple[torch.Tensor, ...], j: int, n: int
) -> None:
    """Window j of the n-window tensors ``src`` into window slot ``slot`` of the ring tensors ``rings`` (dim 2), whose
    windows are ``per`` rows long."""
    for ring, x, p in zip(rings, src, per, strict=True):
        if x.shape[2] // n != p:
            raise ValueError("KV cache window size changed mid-stream (reset the cache for a new size)")
        ring[:, :, slot * p : (slot + 1) * p] = x[:, :, j * p : (j + 1) * p]


class KVCache:
    """Per-layer post-RoPE K, V (and K block means) of the last ``max_windows`` temporal windows.

    Storage is a preallocated ring of window slots per layer, (B, heads, slots * tokens_per_window, d) in
    block order. Key order inside the ring is the slot order, not the age order: attention and the top-k
    selection do not depend on key order. Memory is bounded by the slot count, whatever the stream length.

    spare_slot=True (default): ``max_windows + 1`` slots, so a one-window step writes its window into a
    free slot and attends over the whole ring with no copy (fastest; one more window of memory).
    spare_slot=False: ``max_windows`` slots; a step attends over the ring and the new window(s), then
    writes the kept new windows into the evicted slots (least memory). The two are handed out as pieces
    when the caller can attend over pieces and ``pieces`` is True (no copy), else concatenated.
    """

    def __init__(self, num_layers: int, max_windows: int, spare_slot: bool = True, pieces: bool = True):
        self.num_layers = num_layers
        self.max_windows = max_windows
        self.spare_slot = spare_slot
        self.pieces = pieces
        self.reset()

    def reset(self) -> None:
        n = self.num_layers
        self._k: list[torch.Tensor | None] = [None] * n
        self._v: list[torch.Tensor | None] = [None] * n
        self._m: list[torch.Tensor | None] = [None] * n
        self._cap: list[int] = [0] * n
        self._age: list[list[int]] = [[] for _ in range(n)]  # valid slots, oldest first
        self._pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int] | None] = [None] * n

    @property
    def windows(self) -> list[int]:
        """Cached windows per layer."""
        return [len(a) for a in self._age]

    @staticmethod
    def _take(t: torch.Tensor, slots: list[int], cap: int) -> torch.Tensor:
        """The given window slots of a ring tensor along dim 2 (a view when they form one run)."""
        per = t.shape[2] // cap
        if slots == list(range(slots[0], slots[0] + len(slots))):
            return t[:, :, slots[0] * per : (slots[-1] + 1) * per]
        return torch.cat([t[:, :, s * per : (s + 1) * per] for s in slots], dim=2)

    def _alloc(self, layer: int, k: torch.Tensor, v: torch.Tensor, m: torch.Tensor, n_windows: int) -> None:
        cap = self.max_windows + (1 if self.spare_slot else 0)
        per, per_m = k.shape[2] // n_windows, m.shape[2] // n_windows
        B, H = k.shape[:2]
        self._k[layer] = k.new_empty(B, H, cap * per, k.shape[3])
        self._v[layer] = v.new_empty(B, H, cap * per, v.shape[3])
        self._m[layer] = m.new_empty(B, H, cap * per_m, m.shape[3])
        self._cap[layer] = cap

    def _write(self, layer: int, slot: int, k: torch.Tensor, v: torch.Tensor, m: torch.Tensor, j: int, n: int) -> None:
        """Copy window j of the n-window tensors k, v, m into ``slot``."""
        cap = self._cap[layer]
        rings = (self._k[layer], self._v[layer], self._m[layer])
        _copy_window(rings, tuple(t.shape[2] // cap for t in rings), slot, (k, v, m), j, n)  # type: ignore[union-attr]

    def append(
        self,
        layer: int,
        k: torch.Tensor,
        v: torch.Tensor,
        k_means: torch.Tensor,
        n_windows: int,
        pieces: bool = False,
    ) -> tuple[torch.Tensor | tuple[torch.Tensor, ...], torch.Tensor | tuple[torch.Tensor, ...], torch.Tensor, int]:
        """Add ``n_windows`` new windows; return (K, V, K means, window count) to attend over (cached + new).

        pieces=True (the caller attends over pieces, see :func:`lcsa_attention`): when the ring is full
        (spare_slot=False) and the cache's ``pieces`` is on, K and V come back as tuples (cached, new)
        instead of a concatenation; the K means are always one tensor. Call :meth:`evict` after the
        attention of this layer.
        """
        if self._k[layer] is None:
            self._alloc(layer, k, v, k_means, n_windows)
        age, cap = self._age[layer], self._cap[layer]
        if len(age) + n_windows <= cap:  # room in the ring: write in place, attend over the ring
            free = [s for s in range(cap) if s not in age][:n_windows]
            for j, s in enumerate(free):
                self._write(layer, s, k, v, k_means, j, n_windows)
            self._age[layer] = age + free
            slots = sorted(self._age[layer])
            rk, rv, rm = self._k[layer], self._v[layer], self._m[layer]
            return (
                self._take(rk, slots, cap),  # type: ignore[arg-type]
                self._take(rv, slots, cap),  # type: ignore[arg-type]
                self._take(rm, slots, cap),  # type: ignore[arg-type]
                len(slots),
            )
        # no room: attend over a transient concatenation; the new windows enter the ring at evict()
        self._pending[layer] = (k, v, k_means, n_windows)
        if not age:
            return k, v, k_means, n_windows
        old = sorted(age)
        parts = [(self._take(t, old, cap), new) for t, new in ((self._k[layer], k), (self._v[layer], v))]
        m_old = self._take(self._m[layer], old, cap)  # type: ignore[arg-type]
        if pieces and self.pieces:
            return parts[0], parts[1], torch.cat([m_old, k_means], dim=2), len(old) + n_windows
        return (
            torch.cat(parts[0], dim=2),
            torch.cat(parts[1], dim=2),
            torch.cat([m_old, k_means], dim=2),
            len(old) + n_windows,
        )

    def evict(self, layer: int) -> None:
        """Keep the newest ``max_windows`` windows (the freed slots are reused by the next append)."""
        age = self._age[layer]
        pending = self._pending[layer]
        if pending is None:
            if len(age) > self.max_windows:
                self._age[layer] = age[len(age) - self.max_windows :]
            return
        k, v, m, n = pending
        self._pending[layer] = None
        keep_new = min(n, self.max_windows)
        keep_old = age[len(age) - (self.max_windows - keep_new) :] if keep_new < self.max_windows else []
        free = [s for s in range(self._cap[layer]) if s not in keep_old]
        for i, j in enumerate(range(n - keep_new, n)):
            self._write(layer, free[i], k, v, m, j, n)
        self._age[layer] = keep_old + free[:keep_new]

    def get(self, layer: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """Cached K, V, K means of ``layer`` in age order (oldest first), or None."""
        age = self._age[layer]
        if not age:
            return None
        cap = self._cap[layer]
        return (
            self._take(self._k[layer], age, cap),  # type: ignore[arg-type]
            self._take(self._v[layer], age, cap),  # type: ignore[arg-type]
            self._take(self._m[layer], age, cap),  # type: ignore[arg-type]
        )

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for lst in (self._k, self._v, self._m) for t in lst if t is not None)


class SharedKVCache:
    """Post-RoPE K, V and K block means of every layer's last ``max_windows`` windows in one ring of
    ``num_layers * max_windows + 1`` window slots: one-piece attention at the lean cache's memory.

    Same protocol as :class:`KVCache` (``append`` then ``evict``, per layer, layers in order every call).
    Layer l keeps its W windows in W consecutive slots (mod the ring), newest first, and the one free slot
    of the ring lies just before layer 0's. A steady call adds one window per layer: layer l writes it into
    the free slot just before its own, attends over those W + 1 consecutive slots as one key tensor (a
    view), and its oldest window, its last slot, becomes the free slot just before layer l + 1's. After the
    call every layer sits one slot lower, with the free slot again just before layer 0's. Where a layer's
    W + 1 slots wrap around the end of the ring (at most one layer a call) they are concatenated, a copy.

    Against :class:`KVCache`: its spare slot per layer (one more window of every layer: 1.46 GiB at
    768x1408 for the official model) gives the same one-piece attention; its lean form (no spare slot)
    attends over two pieces (ring, new window) merged by log-sum-exp. Here the extra memory is one window of
    one layer. Key order inside the returned tensors is the slot order, not the age order (attention and
    the top-k selection do not depend on it). While the layers fill (stream start) a layer's windows grow
    downwards inside its own W slots; a call that adds several windows to a full ring attends over
    (cached, new) and rewrites the layer's slots at ``evict``.
    """

    def __init__(self, num_layers: int, max_windows: int, pieces: bool = True):
        if num_layers < 1 or max_windows < 1:
            raise ValueError("SharedKVCache needs at least one layer and one window")
        self.num_layers = num_layers
        self.max_windows = max_windows
        self.pieces = pieces
        self.slots = num_layers * max_windows + 1
        self.reset()

    def reset(self) -> None:
        L, W = self.num_layers, self.max_windows
        self._k: torch.Tensor | None = None  # (B, H, slots * per, d)
        self._v: torch.Tensor | None = None
        self._m: torch.Tensor | None = None  # (B, H, slots * per_m, d)
        self._per = (0, 0)  # tokens and key blocks per window
        # layer l's windows occupy slots lo[l] .. lo[l] + cnt[l] - 1 (mod slots), newest first; an empty
        # layer's W slots are 1 + l*W .. (l + 1)*W, filled from the top down
        self._lo = [1 + (layer + 1) * W for layer in range(L)]
        self._cnt = [0] * L
        self._pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int] | None] = [None] * L
        self._steady = [False] * L  # an append wrote into the free slot; evict moves the layer down

    @property
    def windows(self) -> list[int]:
        """Cached windows per layer."""
        return list(self._cnt)

    def _slice(self, t: torch.Tensor, start: int, count: int, per: int) -> torch.Tensor:
        """Slots start .. start + count - 1 (mod the ring) of a ring tensor along dim 2: a view, or a
        concatenation where they wrap around the ring's end."""
        a = start % self.slots
        if a + count <= self.slots:
            return t[:, :, a * per : (a + count) * per]
        head = self.slots - a
        return torch.cat([t[:, :, a * per :], t[:, :, : (count - head) * per]], dim=2)

    def _ranges(self, start: int, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        per, per_m = self._per
        return (
            self._slice(self._k, start, count, per),  # type: ignore[arg-type]
            self._slice(self._v, start, count, per),  # type: ignore[arg-type]
            self._slice(self._m, start, count, per_m),  # type: ignore[arg-type]
        )

    def _copy_slot(self, dst: int, src: int) -> None:
        """Slot ``src`` into slot ``dst`` (both mod the ring)."""
        per, per_m = self._per
        rings = (self._k, self._v, self._m)
        _copy_window(rings, (per, per, per_m), dst % self.slots, rings, src % self.slots, self.slots)  # type: ignore[arg-type]

    def _write(self, slot: int, k: torch.Tensor, v: torch.Tensor, m: torch.Tensor, j: int, n: int) -> None:
        """Window j of the n-window tensors k, v, m into ``slot`` (mod the ring)."""
        per, per_m = self._per
        rings = (self._k, self._v, self._m)
        _copy_window(rings, (per, per, per_m), slot % self.slots, (k, v, m), j, n)  # type: ignore[arg-type]

    def append(
        self,
        layer: int,
        k: torch.Tensor,
        v: torch.Tensor,
        k_means: torch.Tensor,
        n_windows: int,
        pieces: bool = False,
    ) -> tuple[torch.Tensor | tuple[torch.Tensor, ...], torch.Tensor | tuple[torch.Tensor, ...], torch.Tensor, int]:
        """Add ``n_windows`` new windows (time order) of this layer; return (K, V, K means, window count)
        to attend over, cached and new. Call :meth:`evict` after the attention of this layer."""
        n, W = n_windows, self.max_windows
        if self._k is None:
            per, per_m = k.shape[2] // n, k_means.shape[2] // n
            B, H = k.shape[:2]
            self._k = k.new_empty(B, H, self.slots * per, k.shape[3])
            self._v = v.new_empty(B, H, self.slots * per, v.shape[3])
            self._m = k_means.new_empty(B, H, self.slots * per_m, k_means.shape[3])
            self._per = (per, per_m)
        c, lo = self._cnt[layer], self._lo[layer]
        if c + n <= W:  # filling: the new windows go just below the layer's own
            for j in range(n):
                self._write(lo - 1 - j, k, v, k_means, j, n)
            self._lo[layer], self._cnt[layer] = lo - n, c + n
            kk, vv, mm = self._ranges(lo - n, c + n)
            return kk, vv, mm, c + n
        if c == W and n == 1:  # steady: the free slot lies just below the layer's windows
            self._write(lo - 1, k, v, k_means, 0, 1)
            self._steady[layer] = True
            kk, vv, mm = self._ranges(lo - 1, W + 1)
            return kk, vv, mm, W + 1
        # several windows beyond a full ring: attend over (cached, new); evict rewrites the layer's slots
        self._pending[layer] = (k, v, k_means, n)
        if c == 0:
            return k, v, k_means, n
        ok, ov, om = self._ranges(lo, c)
        if pieces and self.pieces:
            return (ok, k), (ov, v), torch.cat([om, k_means], dim=2), c + n
        return torch.cat([ok, k], dim=2), torch.cat([ov, v], dim=2), torch.cat([om, k_means], dim=2), c + n

    def evict(self, layer: int) -> None:
        """Keep the newest ``max_windows`` windows of this layer."""
        W = self.max_windows
        if self._steady[layer]:  # the oldest window (the last slot) is the next layer's free slot
            self._steady[layer] = False
            self._lo[layer] -= 1
            return
        pending = self._pending[layer]
        if pending is None:
            return
        k, v, m, n = pending
        self._pending[layer] = None
        c, lo = self._cnt[layer], self._lo[layer]
        # full layers all move one slot down; a filling layer ends up on its own W slots
        t0 = lo - 1 if c == W else lo + c - W
        kn = min(n, W)
        ko = W - kn
        for i in reversed(range(ko)):  # the kept old windows move up (t0 + kn >= lo), the highest first
            self._copy_slot(t0 + kn + i, lo + i)
        for i in range(kn):  # the newest window first
            self._write(t0 + i, k, v, m, n - 1 - i, n)
        self._lo[layer], self._cnt[layer] = t0, W

    def get(self, layer: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """Cached K, V, K means of ``layer`` in age order (oldest first), or None."""
        c, lo = self._cnt[layer], self._lo[layer]
        if c == 0:
            return None
        parts = [self._ranges(lo + i, 1) for i in reversed(range(c))]
        return tuple(torch.cat([p[i] for p in parts], dim=2) for i in range(3))  # type: ignore[return-value]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self._k, self._v, self._m) if t is not None)
