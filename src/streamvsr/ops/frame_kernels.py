"""The FlashVSR pipeline's elementwise steps over full-resolution frames as Triton kernels (optional, CUDA; CPU
under Triton's interpreter).

:func:`signed` maps the bicubic frames from [0, 1] to [-1, 1] in their storage dtype (the clamp, the scaling and
the conversion in one pass instead of four; exact: x * 2 is exact in float32, so one rounding of 2x - 1 equals
PyTorch's two).

:func:`~streamvsr.pipeline.flashvsr.finish_frames` applies AdaIN with per-(frame, channel) statistics, clamps,
maps [-1, 1] to [0, 1] in float32 and, for uint8 streams, rounds to 0..255: thirteen elementwise passes over the
full-resolution frames in eager PyTorch (8 x 3 x 768 x 1408 values a chunk at 768x1408), each a kernel that reads
and writes the whole tensor. :func:`finish` does them in one pass that reads the decoder's frames once and writes
the output once. It repeats every rounding of the eager path (each bf16 or fp16 operation rounded to that dtype,
the division correctly rounded, no fused multiply-add), so its output is the eager path's, bit for bit; the
statistics themselves stay PyTorch's reductions (:func:`~streamvsr.ops.color.adain_stats`).
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["available", "finish", "signed"]

try:  # optional: the kernel exists where Triton is installed (CUDA machines have it with torch)
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - the CPU test needs Triton too
    triton = None

if triton is not None:

    @triton.jit
    def _finish(  # noqa: ANN202
        x_ptr,  # noqa: ANN001
        stats_ptr,  # noqa: ANN001
        out_ptr,  # noqa: ANN001
        C,  # noqa: ANN001
        HW,  # noqa: ANN001
        sx_t,  # noqa: ANN001
        sx_c,  # noqa: ANN001
        ADAIN: tl.constexpr,
        U8: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        plane = tl.program_id(1)  # (frame, channel)
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        inside = offs < HW
        t = plane // C
        c = plane % C
        x = tl.load(x_ptr + t.to(tl.int64) * sx_t + c.to(tl.int64) * sx_c + offs, mask=inside, other=0.0)
        dt = x.dtype
        if ADAIN:  # (x - mu_s) / sd_s * sd_r + mu_r, each step rounded to the input dtype as eager PyTorch does
            mu_s = tl.load(stats_ptr + plane * 4).to(tl.float32)
            sd_s = tl.load(stats_ptr + plane * 4 + 1).to(tl.float32)
            sd_r = tl.load(stats_ptr + plane * 4 + 2).to(tl.float32)
            mu_r = tl.load(stats_ptr + plane * 4 + 3).to(tl.float32)
            y = (x.to(tl.float32) - mu_s).to(dt).to(tl.float32)
            y = tl.math.div_rn(y, tl.zeros_like(y) + sd_s).to(dt).to(tl.float32)
            y = (y * sd_r).to(dt).to(tl.float32)
            y = (y + mu_r).to(dt).to(tl.float32)
        else:
            y = x.to(tl.float32)
        y = tl.minimum(tl.maximum(y, -1.0), 1.0)
        y = tl.minimum(tl.maximum((y + 1.0) * 0.5, 0.0), 1.0)  # [0, 1] in float32
        if U8:  # x * 255 + 0.5, clamped, truncated
            y = tl.minimum(tl.maximum(y * 255.0 + 0.5, 0.0), 255.0)
            tl.store(out_ptr + plane.to(tl.int64) * HW + offs, y.to(tl.uint8), mask=inside)
        else:
            tl.store(out_ptr + plane.to(tl.int64) * HW + offs, y, mask=inside)

    @triton.jit
    def _signed(x_ptr, out_ptr, n, BLOCK: tl.constexpr):  # noqa: ANN001, ANN202
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        inside = offs < n
        x = tl.load(x_ptr + offs, mask=inside, other=0.0).to(tl.float32)
        y = tl.minimum(tl.maximum(x, 0.0), 1.0) * 2.0 - 1.0
        tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=inside)


def _on_device(x: torch.Tensor) -> contextlib.AbstractContextManager:
    """Triton launches on the current CUDA device: make it x's (a no-op elsewhere)."""
    return torch.cuda.device(x.device) if x.device.type == "cuda" else contextlib.nullcontext()


def available(x: torch.Tensor) -> bool:
    """Whether :func:`finish` can run on ``x``: CUDA with Triton installed."""
    return triton is not None and x.device.type == "cuda"


def finish(
    sr: torch.Tensor,
    stats: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None,
    to_uint8: bool,
    block: int = 2048,
) -> torch.Tensor:
    """sr (T, C, H, W) about [-1, 1], each (frame, channel) plane contiguous (the decoder's (1, C, T, H, W) output
    transposed is); stats the (mu_s, sd_s, sd_r, mu_r) of :func:`~streamvsr.ops.color.adain_stats` in sr's dtype,
    or None (no colour fix: clamp only). Returns (T, C, H, W) contiguous: float32 in [0, 1], or uint8."""
    T, C, H, W = sr.shape
    if sr.stride(-1) != 1 or sr.stride(-2) != W:
        sr = sr.contiguous()
    out = torch.empty(T, C, H, W, dtype=torch.uint8 if to_uint8 else torch.float32, device=sr.device)
    if stats is not None:
        packed = torch.stack([s.reshape(T, C) for s in stats], dim=-1).contiguous()  # (T, C, 4), sr's dtype
    else:
        packed = sr.new_zeros(1)
    grid = (triton.cdiv(H * W, block), T * C)
    with _on_device(sr):
        _finish[grid](
            sr, packed, out, C, H * W, sr.stride(0), sr.stride(1),
            ADAIN=stats is not None, U8=to_uint8, BLOCK=block, num_warps=8, enable_fp_fusion=False,
        )  # fmt: skip
    return out


def signed(x: torch.Tensor, dtype: torch.dtype, block: int = 4096) -> torch.Tensor:
    """``(x.clamp(0, 1) * 2 - 1).to(dtype)`` of a float32 tensor in one pass, the same values. Returns a contiguous
    tensor of x's shape."""
    if x.dtype != torch.float32:
        raise TypeError(f"signed takes float32, got {x.dtype}")
    x = x.contiguous()
    out = torch.empty(x.shape, dtype=dtype, device=x.device)
    n = x.numel()
    with _on_device(x):
        _signed[(triton.cdiv(n, block),)](x, out, n, BLOCK=block, num_warps=8, enable_fp_fusion=False)
    return out
