"""Tensor layouts that compiled graphs see.

``torch.compile`` (``dynamic=False``) guards every input tensor's strides, those of size-1 dimensions too, although
such a stride never addresses memory. A tensor made by an eager op and the same tensor made by a compiled graph can
differ there alone (Inductor lays out size-1 dimensions its own way), which costs a second graph for one function:
a full trace in every process. :func:`settle_size1_strides` gives every size-1 dimension one fixed stride.
"""

from __future__ import annotations

import torch


def size1_settled_strides(shape: tuple[int, ...], stride: tuple[int, ...]) -> tuple[int, ...]:
    """``stride`` with every size-1 dimension's stride replaced as a contiguous tensor's would be, computed from the
    innermost dimension out (the next dimension's settled stride times its size; 1 for the last)."""
    out = list(stride)
    for d in range(len(shape) - 1, -1, -1):
        if shape[d] == 1:
            out[d] = out[d + 1] * shape[d + 1] if d + 1 < len(shape) else 1
    return tuple(out)


def settle_size1_strides(t: torch.Tensor) -> torch.Tensor:
    """``t`` itself, or a view of the same memory whose size-1 dimensions have :func:`size1_settled_strides`."""
    st = size1_settled_strides(tuple(t.shape), t.stride())
    return t if st == t.stride() else t.as_strided(t.shape, st)
