"""LCSA's block lists and block-sparse attention as Triton kernels (optional, CUDA; CPU under Triton's interpreter).

Two kernels for the steady streaming step of :mod:`~streamvsr.models.flashvsr.attention`:

- :func:`compact_block_lists` turns the selection's scores and thresholds into the block lists a block-sparse kernel
  reads: per query block the count of kept key blocks and their indices, kept ones first in ascending order, then
  the dropped ones. It equals ``block_lists(probs > thr)`` bit for bit, in one launch instead of a comparison, a sum,
  a stable argsort and three dtype conversions (about 1.9 ms of a 768x1408 chunk on an H100 in the profile of the
  seventh session of 2026-11-27).
- :func:`block_sparse_attention` is exact softmax attention of each 128-query block over its listed 128-key blocks
  (the FlashAttention-2 recurrence in base 2), whose programs run in an order given by the caller. FlexAttention
  starts its programs in (query block, head) order, and the H100 hands them to its 132 SMs as SMs free up; the
  selected counts vary from 55 to 153 key blocks per query block at 768x1408, so the last wave leaves SMs idle.
  With ``order`` = :func:`longest_first` (all heads' query blocks, most key blocks first) the same greedy hand-out
  is the longest-processing-time schedule. A query block without any key block gives zeros (and lse -inf).

Shapes: q (B, H, Lq, d), k and v (B, H, Lk, d) with any strides whose last one is 1; Lq and Lk whole blocks.
"""

from __future__ import annotations

import math

import torch

from streamvsr.models.flashvsr._triton import on_device

__all__ = ["available", "block_sparse_attention", "compact_block_lists", "last_resources", "longest_first"]

try:  # optional: the kernels exist where Triton is installed (CUDA machines have it with torch)
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - the CPU tests need Triton too
    triton = None

_LOG2E = 1.4426950408889634

if triton is not None:

    @triton.jit
    def _compact(p_ptr, thr_ptr, num_ptr, idx_ptr, nq, nk, nb, BLOCK: tl.constexpr):  # noqa: ANN001, ANN202
        """One program per (batch, head, query block): keep = p > thr of its query window; scatter the key block
        indices, kept ones first (ascending), then the dropped ones (ascending)."""
        row = tl.program_id(0)
        bh = row // nq
        t = tl.load(thr_ptr + bh * (nq // nb) + (row % nq) // nb)
        offs = tl.arange(0, BLOCK)
        inside = offs < nk
        x = tl.load(p_ptr + row.to(tl.int64) * nk + offs, mask=inside, other=-1.0)
        keep = (x > t) & inside
        drop = (x <= t) & inside
        n = tl.sum(keep.to(tl.int32), 0)
        pos = tl.where(keep, tl.cumsum(keep.to(tl.int32), 0) - 1, n + tl.cumsum(drop.to(tl.int32), 0) - 1)
        tl.store(idx_ptr + row.to(tl.int64) * nk + pos, offs, mask=inside)
        tl.store(num_ptr + row, n)

    @triton.jit
    def _tile(ptr, desc, b, h, row0, sb, sh, sm, BLOCK: tl.constexpr, D: tl.constexpr, USE_TMA: tl.constexpr):  # noqa: ANN001, ANN202
        """The (BLOCK, D) tile at rows row0.. of head (b, h): through a TMA descriptor or plain pointers."""
        if USE_TMA:
            return desc.load([b, h, row0, 0]).reshape(BLOCK, D)
        rows = row0 + tl.arange(0, BLOCK)
        base = ptr + b.to(tl.int64) * sb + h.to(tl.int64) * sh
        return tl.load(base + rows.to(tl.int64)[:, None] * sm + tl.arange(0, D)[None, :])

    @triton.jit
    def _attend(  # noqa: ANN202
        q_ptr,  # noqa: ANN001
        k_ptr,  # noqa: ANN001
        v_ptr,  # noqa: ANN001
        o_ptr,  # noqa: ANN001
        lse_ptr,  # noqa: ANN001
        q_desc,  # noqa: ANN001
        k_desc,  # noqa: ANN001
        v_desc,  # noqa: ANN001
        num_ptr,  # noqa: ANN001
        idx_ptr,  # noqa: ANN001
        order_ptr,  # noqa: ANN001
        sqb,
        sqh,
        sqm,  # noqa: ANN001
        skb,
        skh,
        skm,  # noqa: ANN001
        svb,
        svh,
        svm,  # noqa: ANN001
        sob,
        soh,
        som,  # noqa: ANN001
        H,
        NQB,
        NKB,
        qk_scale,  # noqa: ANN001
        BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr,
        D: tl.constexpr,
        ORDERED: tl.constexpr,
        USE_TMA: tl.constexpr,
        RETURN_LSE: tl.constexpr,
        STAGES: tl.constexpr,
    ):
        task = tl.program_id(0)
        if ORDERED:
            task = tl.load(order_ptr + task)
        bh = task // NQB
        qb = task % NQB
        b = bh // H
        h = bh % H
        n = tl.load(num_ptr + task)
        q = _tile(q_ptr, q_desc, b, h, qb * BLOCK_M, sqb, sqh, sqm, BLOCK_M, D, USE_TMA)
        m_i = tl.full((BLOCK_M,), float("-inf"), tl.float32)
        l_i = tl.zeros((BLOCK_M,), tl.float32)
        acc = tl.zeros((BLOCK_M, D), tl.float32)
        lists = idx_ptr + task.to(tl.int64) * NKB
        SUB: tl.constexpr = BLOCK_M // BLOCK_N  # key tiles per listed block (the lists count blocks of BLOCK_M)
        for j in tl.range(0, n * SUB, num_stages=STAGES):
            row = tl.load(lists + j // SUB) * BLOCK_M + (j % SUB) * BLOCK_N
            k = _tile(k_ptr, k_desc, b, h, row, skb, skh, skm, BLOCK_N, D, USE_TMA)
            v = _tile(v_ptr, v_desc, b, h, row, svb, svh, svm, BLOCK_N, D, USE_TMA)
            s = tl.dot(q, tl.trans(k))  # (BLOCK_M, BLOCK_N) fp32
            m_new = tl.maximum(m_i, tl.max(s, 1) * qk_scale)  # running row maximum, base-2 units
            p = tl.math.exp2(s * qk_scale - m_new[:, None])
            alpha = tl.math.exp2(m_i - m_new)
            l_i = l_i * alpha + tl.sum(p, 1)
            acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None])
            m_i = m_new
        seen = l_i > 0
        out = acc / tl.where(seen, l_i, 1.0)[:, None]  # rows of a query block without key blocks: zeros
        rows = qb * BLOCK_M + tl.arange(0, BLOCK_M)
        o_base = o_ptr + b.to(tl.int64) * sob + h.to(tl.int64) * soh
        tl.store(o_base + rows.to(tl.int64)[:, None] * som + tl.arange(0, D)[None, :], out.to(o_ptr.dtype.element_ty))
        if RETURN_LSE:  # natural log; -inf where no key block was seen
            lse = tl.where(seen, (m_i + tl.math.log2(tl.where(seen, l_i, 1.0))) * 0.6931471805599453, float("-inf"))
            tl.store(lse_ptr + bh.to(tl.int64) * NQB * BLOCK_M + rows, lse)


def available(x: torch.Tensor) -> bool:
    """Whether the kernels can run on ``x``'s device: CUDA with Triton installed."""
    return triton is not None and x.device.type == "cuda"


def compact_block_lists(probs: torch.Tensor, thr: torch.Tensor, nb: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The block lists of ``probs > thr``: probs (B, H, Nq, Nk) float32, thr (B, H, Nq / nb, 1) float32, one
    threshold per query window of ``nb`` blocks. Returns num (B, H, Nq) int32 and idx (B, H, Nq, Nk) int32, the
    same as ``attention.block_lists(mask)`` of the mask that ``probs > thr`` gives per window."""
    B, H, Nq, Nk = probs.shape
    if probs.dtype != torch.float32 or thr.dtype != torch.float32:
        raise TypeError(f"compact_block_lists takes float32, got {probs.dtype} and {thr.dtype}")
    if Nq % nb or thr.shape != (B, H, Nq // nb, 1):
        raise ValueError(f"thresholds {tuple(thr.shape)} do not match {Nq} query blocks in windows of {nb}")
    p = probs.contiguous()
    t = thr.contiguous()
    num = torch.empty(B, H, Nq, dtype=torch.int32, device=probs.device)
    idx = torch.empty(B, H, Nq, Nk, dtype=torch.int32, device=probs.device)
    with on_device(probs):
        _compact[(B * H * Nq,)](p, t, num, idx, Nq, Nk, nb, BLOCK=triton.next_power_of_2(Nk), num_warps=4)
    return num, idx


def longest_first(num: torch.Tensor) -> torch.Tensor:
    """The launch order of :func:`block_sparse_attention`'s programs: every (batch, head, query block) of num
    (B, H, Nq), most listed key blocks first. int32 (B * H * Nq,)."""
    return torch.argsort(num.reshape(-1), descending=True).to(torch.int32)


def _descriptor(x: torch.Tensor, rows: int):  # noqa: ANN202
    from triton.tools.tensor_descriptor import TensorDescriptor

    return TensorDescriptor(x, list(x.shape), list(x.stride()), [1, 1, rows, x.shape[-1]])


def block_sparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    num: torch.Tensor,
    idx: torch.Tensor,
    block: int = 128,
    order: torch.Tensor | None = None,
    return_lse: bool = False,
    use_tma: bool | None = None,
    num_warps: int = 8,
    num_stages: int = 3,
    block_n: int | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention of each query block of q (B, H, Lq, d) over the key blocks of k, v (B, H, Lk, d) that
    num (B, H, Lq / block) and idx (B, H, Lq / block, >= max num) int32 list (:func:`compact_block_lists`, or
    ``attention.block_lists``). Scale 1 / sqrt(d). Returns (B, H, Lq, d) in q's dtype, and with ``return_lse`` the
    natural log-sum-exp of each row's scores (B, H, Lq) float32 (-inf for rows without key blocks).

    order: None (programs in (batch, head, query block) order) or the launch order, a permutation of all
    B * H * Lq / block programs as int32 (:func:`longest_first`). use_tma: load tiles through TMA descriptors
    (default on CUDA devices of compute capability 9 or newer); num_warps and num_stages: the kernel's launch
    options (the software pipeline's depth over the key tiles); block_n: the rows of a key tile (a divisor of
    ``block``; default ``block``)."""
    B, H, Lq, d = q.shape
    if k.shape[:2] != (B, H) or v.shape != k.shape or k.shape[-1] != d:
        raise ValueError(f"q {tuple(q.shape)}, k {tuple(k.shape)} and v {tuple(v.shape)} do not match")
    if Lq % block or k.shape[2] % block:
        raise ValueError(f"query length {Lq} and key length {k.shape[2]} must be whole blocks of {block}")
    nqb = Lq // block
    if num.shape != (B, H, nqb) or idx.shape[:3] != (B, H, nqb):
        raise ValueError(f"block lists {tuple(num.shape)} / {tuple(idx.shape)} do not match {nqb} query blocks")
    q, k, v = (x if x.stride(-1) == 1 else x.contiguous() for x in (q, k, v))
    num = num.contiguous()
    idx = idx.contiguous()
    out = torch.empty_like(q)  # q's layout: the DiT's (B, L, H, d) view stays a view after the transpose back
    lse = torch.empty(B, H, Lq, dtype=torch.float32, device=q.device) if return_lse else out
    if use_tma is None:
        use_tma = q.device.type == "cuda" and torch.cuda.get_device_capability(q.device)[0] >= 9
    block_n = block if block_n is None else block_n
    if block % block_n:
        raise ValueError(f"block_n {block_n} does not divide the block {block}")
    descs = (_descriptor(q, block), _descriptor(k, block_n), _descriptor(v, block_n)) if use_tma else (None,) * 3
    tasks = B * H * nqb
    if order is not None and order.shape != (tasks,):
        raise ValueError(f"order {tuple(order.shape)} is not a permutation of {tasks} programs")
    global _LAST_RESOURCES
    with on_device(q):
        kernel = _attend[(tasks,)](
            q, k, v, out, lse, *descs, num, idx, order if order is not None else num,
            *q.stride()[:3], *k.stride()[:3], *v.stride()[:3], *out.stride()[:3],
            H, nqb, idx.shape[-1], _LOG2E / math.sqrt(d),
            BLOCK_M=block, BLOCK_N=block_n, D=d, ORDERED=order is not None, USE_TMA=use_tma,
            RETURN_LSE=return_lse, STAGES=num_stages, num_warps=num_warps,
        )  # fmt: skip
    if kernel is not None and hasattr(kernel, "n_regs"):  # a compiled kernel (the interpreter returns none)
        _LAST_RESOURCES = {
            "registers": kernel.n_regs,
            "spills": kernel.n_spills,
            "shared_bytes": getattr(kernel.metadata, "shared", None),
        }
    return (out, lse) if return_lse else out


_LAST_RESOURCES: dict | None = None


def last_resources() -> dict | None:
    """Registers per thread, spills and shared memory of the attention kernel as last launched (CUDA), else None."""
    return None if _LAST_RESOURCES is None else dict(_LAST_RESOURCES)
