"""The streaming protocol every upscaler implements.

A model is fed frames in order with ``push`` and returns whatever output frames are ready;
``flush`` ends the stream and returns the rest; ``reset`` starts a new stream. Nothing is hidden:
all state lives in the object and is bounded by the model's window, never by the video's length.

Frames are ``(T, 3, H, W)`` float tensors, RGB in ``[0, 1]``, on the model's device (or in host memory for a
model whose spec sets ``host_input``). A model whose spec sets ``uint8_io`` also takes ``torch.uint8`` frames
(0..255) and then returns ``torch.uint8`` frames: 8-bit video reaches it without any float conversion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch


@dataclass(frozen=True)
class ModelSpec:
    """What a streaming model declares about itself.

    scale:    output size = scale x input size.
    latency:  look-ahead in frames: the output of input frame i is ready once frame i + latency
              has been pushed (or at flush).
    multiple: input height and width must be multiples of this (the engine pads and crops back).
    dtypes:   compute dtypes the model supports, preferred first.
    uint8_io: the model also works on integers: pushed ``torch.uint8`` frames (0..255), it returns
              ``torch.uint8`` frames, the same values the float path gives after rounding (a model that
              only moves or copies pixels: identity, nearest-neighbour, crops; or one that converts on its
              own device, as FlashVSR does). 8-bit video then skips the host's uint8 -> float -> uint8
              conversions, which on a CPU cost more than such a model, and travels to a GPU in a quarter of
              the bytes.
    host_input: ``push`` also takes frames in host (CPU) memory and moves them to its device itself, on
              its own CUDA stream. The engine then hands host frames over as they are: a copy on the
              caller's stream would wait behind the caller's work (e.g. reading the last output), and
              the model could not run ahead of it.
    """

    name: str
    scale: int
    latency: int = 0
    multiple: int = 1
    dtypes: tuple[torch.dtype, ...] = field(default=(torch.float32,))
    uint8_io: bool = False
    host_input: bool = False


@runtime_checkable
class StreamingModel(Protocol):
    spec: ModelSpec

    def push(self, frames: torch.Tensor) -> torch.Tensor:
        """Feed ``(T, 3, h, w)`` frames in [0, 1]; return the ``(T', 3, h*s, w*s)`` frames now ready."""
        ...

    def flush(self) -> torch.Tensor:
        """End the stream; return every remaining output frame (extra padding frames are allowed:
        the engine trims to exactly one output per input)."""
        ...

    def reset(self) -> None:
        """Drop all state; the next ``push`` starts a new stream."""
        ...
