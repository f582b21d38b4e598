"""What the optional Triton kernels of this package share (``block_kernels``, ``radix_select``)."""

from __future__ import annotations

import contextlib

import torch


def on_device(x: torch.Tensor) -> contextlib.AbstractContextManager:
    """The context that makes ``x``'s CUDA device the current one for a Triton launch (Triton launches on the
    current device: a cuda:1 tensor from a caller that did not switch devices); a no-op elsewhere."""
    return torch.cuda.device(x.device) if x.device.type == "cuda" else contextlib.nullcontext()
