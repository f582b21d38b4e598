"""LCSA's block-sparse attention through FlashAttention 4's Hopper kernel (optional: ``pip install flash-attn-4``).

``flash-attn-4`` ships its kernels as Python for NVIDIA's CuTe DSL, which compiles them at run time (pip wheels
only, no CUDA build). Its Hopper forward kernel has FlashAttention 3's design: a producer warp loads the K and V
tiles through TMA while two consumer warpgroups take turns (one's softmax runs while the other's GEMMs do), each
also overlapping its next QK^T GEMM with its softmax. FlexAttention's Triton kernel runs the softmax between the
two GEMMs, and keeps the tensor cores busy about half the time (docs/performance.md). The kernel takes block
lists like ours: per (batch, head, query block) the count of key blocks and their indices, here all "full" blocks
(no mask inside a block).

On one steady self-attention call of the official model at 768x1408 on an H100 it took 1.08 ms against
FlexAttention's 1.89 ms (740 against 421 TFLOP/s of useful work; 2.35 against 3.73 ms at 1080p;
``bench/attention_kernels.py --layout captured``, twelfth session of 2026-11-27 in docs/performance.md).

Shapes: q (B, H, Lq, d), k and v (B, H, Lk, d), views of (B, L, H, d) tensors or not (the kernel reads any strides
whose last one is 1 and whose others are 16-byte multiples); Lq and Lk whole blocks of 128.
"""

from __future__ import annotations

import os
import warnings

import torch

from streamvsr.models.flashvsr._triton import on_device

__all__ = ["block_sparse_attention", "eligible", "installed"]

BLOCK = 128  # the kernel's key tile on Hopper, which the block lists must match
HEAD_DIM = 128  # the only head size measured (the official model's)

_INTERFACE: tuple | None | bool = False  # False: not imported yet; None: not installed or broken
_FAILED: set = set()  # devices whose first call raised (compilation failed): FlexAttention there
_SEEN: set = set()  # devices where a call succeeded (a later failure there is an error)


def _interface() -> tuple | None:
    """(flash_attn_func, BlockSparseTensorsTorch) of ``flash_attn.cute``, or None where it does not import."""
    global _INTERFACE
    if _INTERFACE is False:
        # the package's on-disk cache of compiled kernels (read at its import; the caller's setting wins): without
        # it every process compiles the kernel again on its first call, about 8 s on an H100
        os.environ.setdefault("FLASH_ATTENTION_CUTE_DSL_CACHE_ENABLED", "1")
        try:
            from flash_attn.cute.block_sparsity import BlockSparseTensorsTorch
            from flash_attn.cute.interface import flash_attn_func
        except Exception:  # noqa: BLE001 - missing, or installed without its CuTe DSL libraries
            _INTERFACE = None
        else:
            _INTERFACE = (flash_attn_func, BlockSparseTensorsTorch)
    return _INTERFACE  # type: ignore[return-value]


def installed() -> bool:
    """Whether ``flash-attn-4`` imports in this process."""
    return _interface() is not None


def eligible(q: torch.Tensor, k: torch.Tensor, block: int) -> bool:
    """Whether :func:`block_sparse_attention` runs this call: the package imports, q is on a Hopper GPU (compute
    capability 9.x, where it was measured) in bf16 or fp16 with heads of 128, the blocks are the kernel's 128,
    no gradient is wanted (inference only) and no earlier call on the device failed."""
    if q.device.type != "cuda" or q.dtype not in (torch.bfloat16, torch.float16) or k.dtype != q.dtype:
        return False
    if block != BLOCK or q.shape[-1] != HEAD_DIM or q.device in _FAILED:
        return False
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad):
        return False
    return torch.cuda.get_device_capability(q.device)[0] == 9 and installed()


def block_sparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    num: torch.Tensor,
    idx: torch.Tensor,
    block: int = BLOCK,
) -> torch.Tensor | None:
    """Softmax attention of each query block of q (B, H, Lq, d) over the key blocks of k, v (B, H, Lk, d) that
    num (B, H, Lq / block) and idx (B, H, Lq / block, Lk / block) int32 list (the same lists as
    ``block_kernels.block_sparse_attention``). Scale 1 / sqrt(d); a query block without key blocks gives zeros.
    Returns (B, H, Lq, d), a view of a (B, Lq, H, d) tensor; or None where the kernel failed on its first call on
    this device (it is not used there again; the caller falls back)."""
    fn, lists_type = _interface()  # type: ignore[misc]
    B, H, Lq, _ = q.shape
    nk = k.shape[2] // block
    if num.shape != (B, H, Lq // block) or idx.shape != (B, H, Lq // block, nk):
        raise ValueError(f"block lists {tuple(num.shape)} / {tuple(idx.shape)} do not match q {tuple(q.shape)}")
    lists = lists_type(
        mask_block_cnt=torch.zeros_like(num),  # no partial (masked) blocks
        mask_block_idx=idx,
        full_block_cnt=num,
        full_block_idx=idx,
        block_size=(block, block),
    )
    first = q.device not in _SEEN
    try:
        with on_device(q), warnings.catch_warnings():
            # the CuTe DSL's note, while it compiles, that one argument of the kernel is not a JIT argument
            warnings.filterwarnings("ignore", message=".*cannot be converted to a JitArgument.*")
            out, _ = fn(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), block_sparse_tensors=lists)
    except Exception as e:  # noqa: BLE001 - only a device's first call (the kernel's compilation) may fail softly
        if not first:
            raise
        _FAILED.add(q.device)
        warnings.warn(f"FlashAttention 4 failed on {q.device}, FlexAttention runs instead: {e}", stacklevel=2)
        return None
    _SEEN.add(q.device)
    return out.transpose(1, 2)  # (B, H, Lq, d)
