"""Pad/crop arithmetic (pure functions).

The engine pads every frame on the bottom/right to the model's size multiple, then crops the
model output back to exactly ``scale x`` the input size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def padded_size(size: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``size`` (size >= 1)."""
    if size < 1 or multiple < 1:
        raise ValueError(f"size and multiple must be >= 1, got {size}, {multiple}")
    return -(-size // multiple) * multiple


def pad_amounts(height: int, width: int, multiple: int) -> tuple[int, int]:
    """(bottom, right) padding that brings ``height x width`` to multiples of ``multiple``."""
    return padded_size(height, multiple) - height, padded_size(width, multiple) - width


def pad_frames(frames: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad ``(T, C, H, W)`` frames on the bottom/right to multiples of ``multiple``.

    Uses reflection where the frame is large enough (no hard edge for the model to see), else
    edge replication.
    """
    h, w = frames.shape[-2:]
    ph, pw = pad_amounts(h, w, multiple)
    if ph == 0 and pw == 0:
        return frames
    mode = "reflect" if (ph < h and pw < w) else "replicate"
    return F.pad(frames, (0, pw, 0, ph), mode=mode)


def crop_output(frames: torch.Tensor, height: int, width: int, scale: int) -> torch.Tensor:
    """Crop ``(T, C, H', W')`` model output back to ``(T, C, scale*height, scale*width)``."""
    return frames[..., : scale * height, : scale * width]
