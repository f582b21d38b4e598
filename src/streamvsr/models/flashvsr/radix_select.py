"""The k-th largest value of each row as one Triton kernel (a radix select), for the LCSA threshold on CUDA.

The LCSA selection keeps, per (head, query window), the block pairs whose score is above the (k+1)-th largest of
the window's scores (:func:`~streamvsr.models.flashvsr.attention.topk_select`). ``torch.topk`` finds it in about
100 us per layer for the 12 rows of 17,424 scores at 768x1408 on an H100, a latency-bound kernel on a few SMs.

Here one program per row reads the row four times and narrows the answer down by one byte each time: the scores
are softmax probabilities, non-negative float32, whose bit patterns as int32 sort like the values. Pass p builds
a histogram of byte p (from the top) over the entries that match the bytes chosen so far, and picks the byte where
the count of larger entries first reaches k. The result is the exact k-th largest value, ties included, the same
bits as ``torch.topk(x, k).values.min()``.

Entries with the sign bit set (the -1.0 that masks invisible key windows, -0.0) never count and are never returned:
the caller must ask for k at most the row's count of non-negative entries (the selection's k is at most the count
of visible block pairs). Optional: needs Triton and CUDA; :func:`available` says whether it can run.
"""

from __future__ import annotations

import functools

import torch

__all__ = ["available", "kth_largest_rows"]


@functools.cache
def _kernel():  # noqa: ANN202 - built on first use, so that importing this module needs no Triton
    import triton
    import triton.language as tl

    @triton.jit
    def kth_largest_kernel(x_ptr, out_ptr, k, stride, n: tl.constexpr, BLOCK: tl.constexpr):  # noqa: ANN001, ANN202
        row = tl.program_id(0)
        base = x_ptr + row.to(tl.int64) * stride
        bins = tl.arange(0, 256)
        rank = k  # the rank still to find among the entries that match the prefix
        prefix = 0
        for p in tl.static_range(4):
            shift = 24 - 8 * p  # a compile-time constant in the unrolled loop
            hist = tl.zeros((256,), dtype=tl.int32)
            for start in range(0, n, BLOCK):
                offs = start + tl.arange(0, BLOCK)
                inside = offs < n
                key = tl.load(base + offs, mask=inside, other=-1.0).to(tl.int32, bitcast=True)
                ok = inside & (key >= 0)  # non-negative floats sort like their bits
                if p > 0:
                    ok = ok & ((key >> (shift + 8)) == (prefix >> (shift + 8)))
                hist += tl.histogram((key >> shift) & 255, 256, mask=ok)
            at_least = tl.cumsum(hist, 0, reverse=True)  # matching entries whose byte is >= each bin
            byte = tl.max(tl.where(at_least >= rank, bins, -1), 0)
            rank = rank - tl.sum(tl.where(bins > byte, hist, 0), 0)
            prefix = prefix | (byte << shift)
        tl.store(out_ptr + row, prefix.to(tl.float32, bitcast=True))

    return kth_largest_kernel


def available(x: torch.Tensor) -> bool:
    """Whether :func:`kth_largest_rows` can run on ``x``: float32 on CUDA with Triton installed."""
    if x.dtype != torch.float32 or x.device.type != "cuda":
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def kth_largest_rows(x: torch.Tensor, k: int, block: int = 4096) -> torch.Tensor:
    """The k-th largest (k >= 1) of each row of ``x`` (..., n) float32: (..., 1).

    Only entries without the sign bit count (see the module docstring); k must be at most their count in every
    row. Runs on the tensor's device through Triton (on the CPU only under ``TRITON_INTERPRET=1``, for tests)."""
    if x.dtype != torch.float32:
        raise TypeError(f"kth_largest_rows takes float32, got {x.dtype}")
    n = x.shape[-1]
    if not 1 <= k <= n:
        raise ValueError(f"k = {k} is outside 1 .. {n}")
    rows = x.reshape(-1, n)
    if rows.stride(-1) != 1:
        rows = rows.contiguous()
    out = torch.empty(rows.shape[0], dtype=torch.float32, device=x.device)
    _kernel()[(rows.shape[0],)](rows, out, k, rows.stride(0), n=n, BLOCK=block, num_warps=8)
    return out.view(*x.shape[:-1], 1)
