"""models.flashvsr.layout: size-1 dimensions get one fixed stride; the memory and values stay the same."""

from __future__ import annotations

import torch

from streamvsr.models.flashvsr.layout import settle_size1_strides, size1_settled_strides


def test_settled_strides_are_the_contiguous_ones_for_size1_dims() -> None:
    assert size1_settled_strides((1, 4, 3), (999, 3, 1)) == (12, 3, 1)
    assert size1_settled_strides((2, 1, 3), (3, 77, 1)) == (3, 3, 1)
    assert size1_settled_strides((2, 3, 1), (3, 1, 5)) == (3, 1, 1)
    assert size1_settled_strides((2, 3), (3, 1)) == (3, 1)  # no size-1 dimension: unchanged
    # channels-last (1, C, H, W): only the batch stride moves, the others address memory
    assert size1_settled_strides((1, 8, 4, 5), (160, 1, 40, 8)) == (8, 1, 40, 8)


def test_settle_is_a_view_of_the_same_memory() -> None:
    big = torch.arange(2 * 8 * 4 * 5, dtype=torch.float32).reshape(2, 8, 4, 5)
    x = big[1:].to(memory_format=torch.channels_last)[:, :, 1:]  # (1, 8, 3, 5), non-contiguous, offset
    y = settle_size1_strides(x)
    assert y.stride() == size1_settled_strides(tuple(x.shape), x.stride()) != x.stride()
    assert y.data_ptr() == x.data_ptr() and torch.equal(y, x)
    assert settle_size1_strides(y) is y  # already settled: the tensor itself
    c = torch.zeros(3, 4)
    assert settle_size1_strides(c) is c
