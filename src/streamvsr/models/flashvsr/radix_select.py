"""The k-th largest value of each row as one Triton kernel (a radix select), for the LCSA threshold on CUDA.

The LCSA selection keeps, per (head, query window), the block pairs whose score is above the (k+1)-th largest of
the window's scores (:func:`~streamvsr.models.flashvsr.attention.topk_select`). ``torch.topk`` finds it in about
100 us per layer for the 12 rows of 17,424 scores at 768x1408 on an H100, a latency-bound kernel on a few SMs.

Here one program per row reads the row four times and narrows the answer down by one byte each time: the scores
are softmax probabilities, non-negative float32, whose bit patterns as int32 sort like the values. Pass p builds
a histogram of byte p (from the top) over the entries that match the bytes chosen so far, and picks the byte where
the count of larger entries first reaches k. The result is the exact k-th largest value, ties included, the same
bits as ``torch.topk(x, k).values.min()``.

One program per row (``segment=None``) took 55 instead of 103 us at 768x1408 on an H100 but 237 instead of 133 us
for the 12 rows of 72,900 scores at 1080p: one program reads too little in parallel. With ``segment``, each pass
splits the rows over several programs whose byte histograms add up atomically: 122 us at 1080p, but 142 us at
768x1408 (``scripts/topk_micro.py``, docs/performance.md, seventh session of 2026-11-27). ``segment="auto"``
(:func:`auto_segment`) takes the faster form by the row length.

Entries with the sign bit set (the -1.0 that masks invisible key windows, -0.0) never count and are never returned:
the caller must ask for k at most the row's count of non-negative entries (the selection's k is at most the count
of visible block pairs). Optional: needs Triton and CUDA; :func:`available` says whether it can run.
"""

from __future__ import annotations

import torch

from streamvsr.models.flashvsr._triton import on_device

__all__ = ["auto_segment", "available", "kth_largest_rows"]


try:  # optional: the kernels exist where Triton is installed (CUDA machines have it with torch)
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - the CPU test needs Triton too
    triton = None

if triton is not None:

    @triton.jit
    def _byte_histogram(base, lo, hi, n, prefix, shift, MATCH: tl.constexpr, BLOCK: tl.constexpr):  # noqa: ANN001, ANN202
        """Histogram (256,) of byte ``shift`` of the row's entries lo .. hi-1 (< n) without the sign bit whose higher
        bytes equal ``prefix``'s (MATCH; the first pass takes them all)."""
        hist = tl.zeros((256,), dtype=tl.int32)
        for start in range(lo, hi, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            inside = offs < n
            key = tl.load(base + offs, mask=inside, other=-1.0).to(tl.int32, bitcast=True)
            ok = inside & (key >= 0)  # non-negative floats sort like their bits
            if MATCH:
                ok = ok & ((key >> (shift + 8)) == (prefix >> (shift + 8)))
            hist += tl.histogram((key >> shift) & 255, 256, mask=ok)
        return hist

    @triton.jit
    def _choose(hist, rank, prefix, shift):  # noqa: ANN001, ANN202
        """The byte at ``shift`` of the rank-th largest among the entries counted in ``hist``: (rank among the
        entries with that byte, prefix with it)."""
        bins = tl.arange(0, 256)
        at_least = tl.cumsum(hist, 0, reverse=True)  # counted entries whose byte is >= each bin
        byte = tl.max(tl.where(at_least >= rank, bins, -1), 0)
        return rank - tl.sum(tl.where(bins > byte, hist, 0), 0), prefix | (byte << shift)

    @triton.jit
    def _one_program_per_row(x_ptr, out_ptr, k, stride, n: tl.constexpr, BLOCK: tl.constexpr):  # noqa: ANN001, ANN202
        row = tl.program_id(0)
        base = x_ptr + row.to(tl.int64) * stride
        rank = k  # the rank still to find among the entries that match the prefix
        prefix = 0
        for p in tl.static_range(4):
            hist = _byte_histogram(base, 0, n, n, prefix, 24 - 8 * p, p > 0, BLOCK)
            rank, prefix = _choose(hist, rank, prefix, 24 - 8 * p)
        tl.store(out_ptr + row, prefix.to(tl.float32, bitcast=True))

    @triton.jit
    def _chosen(hist_ptr, row, k, passes: tl.constexpr):  # noqa: ANN001, ANN202
        """The bytes fixed by the first ``passes`` passes, from their complete histograms (256 int32 per pass)."""
        rank = k
        prefix = 0
        for p in tl.static_range(passes):
            hist = tl.load(hist_ptr + (row * 4 + p) * 256 + tl.arange(0, 256))
            rank, prefix = _choose(hist, rank, prefix, 24 - 8 * p)
        return prefix

    @triton.jit
    def _histogram_pass(  # noqa: ANN202
        x_ptr,  # noqa: ANN001
        hist_ptr,  # noqa: ANN001
        k,  # noqa: ANN001
        stride,  # noqa: ANN001
        n: tl.constexpr,
        SEGMENT: tl.constexpr,
        PASS: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        row, seg = tl.program_id(0), tl.program_id(1)
        base = x_ptr + row.to(tl.int64) * stride
        prefix = _chosen(hist_ptr, row, k, PASS)
        hist = _byte_histogram(base, seg * SEGMENT, (seg + 1) * SEGMENT, n, prefix, 24 - 8 * PASS, PASS > 0, BLOCK)
        tl.atomic_add(hist_ptr + (row * 4 + PASS) * 256 + tl.arange(0, 256), hist)

    @triton.jit
    def _finish(hist_ptr, out_ptr, k):  # noqa: ANN001, ANN202
        row = tl.program_id(0)
        tl.store(out_ptr + row, _chosen(hist_ptr, row, k, 4).to(tl.float32, bitcast=True))


def available(x: torch.Tensor) -> bool:
    """Whether :func:`kth_largest_rows` can run on ``x``: float32 on CUDA with Triton installed."""
    if x.dtype != torch.float32 or x.device.type != "cuda":
        return False
    return triton is not None


def auto_segment(n: int) -> int | None:
    """The measured faster form for rows of ``n`` values: one program per row up to 32,768 values (17,424 at
    768x1408), else rows split into pieces of 4,096 (72,900 at 1080p)."""
    return None if n <= 32768 else 4096


def kth_largest_rows(x: torch.Tensor, k: int, block: int = 4096, segment: int | str | None = None) -> torch.Tensor:
    """The k-th largest (k >= 1) of each row of ``x`` (..., n) float32: (..., 1).

    Only entries without the sign bit count (see the module docstring); k must be at most their count in every
    row. ``segment`` None: one program per row (measured, docs/performance.md); else each pass splits the rows
    into pieces of ``segment`` values (a multiple of ``block``), one program each, whose histograms add up
    atomically, and a last program per row reads the answer off the four histograms (six launches); "auto":
    :func:`auto_segment` of the row length. Runs on the tensor's device through Triton (on the CPU only under
    ``TRITON_INTERPRET=1``, for tests)."""
    if x.dtype != torch.float32:
        raise TypeError(f"kth_largest_rows takes float32, got {x.dtype}")
    n = x.shape[-1]
    if not 1 <= k <= n:
        raise ValueError(f"k = {k} is outside 1 .. {n}")
    rows = x.reshape(-1, n)
    if rows.stride(-1) != 1:
        rows = rows.contiguous()
    out = torch.empty(rows.shape[0], dtype=torch.float32, device=x.device)
    if segment == "auto":
        segment = auto_segment(n)
    if segment is not None and segment % block:
        raise ValueError(f"segment {segment} is not a multiple of block {block}")
    with on_device(x):
        if segment is None:
            _one_program_per_row[(rows.shape[0],)](rows, out, k, rows.stride(0), n=n, BLOCK=block, num_warps=8)
            return out.view(*x.shape[:-1], 1)
        hist = torch.zeros(rows.shape[0], 4, 256, dtype=torch.int32, device=x.device)
        grid = (rows.shape[0], -(-n // segment))
        for p in range(4):
            _histogram_pass[grid](rows, hist, k, rows.stride(0), n=n, SEGMENT=segment, PASS=p, BLOCK=block, num_warps=4)
        _finish[(rows.shape[0],)](hist, out, k)
    return out.view(*x.shape[:-1], 1)
