"""Streaming wrapper for per-frame upscalers (no temporal state, latency 0)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from streamvsr.pipeline.protocol import ModelSpec

FrameFn = Callable[[torch.Tensor], torch.Tensor]


class FrameModel:
    """Runs ``fn`` on each pushed batch of frames: ``(T, 3, h, w) -> (T, 3, s*h, s*w)`` in [0, 1].

    ``batch`` bounds how many frames go through ``fn`` at once (memory), whatever ``push`` gets.
    With ``spec.uint8_io``, ``fn`` must also map ``torch.uint8`` frames to ``torch.uint8`` frames; those
    go through as they are (no dtype change; no clamp, uint8 cannot leave 0..255).
    """

    def __init__(self, fn: FrameFn, spec: ModelSpec, dtype: torch.dtype = torch.float32, batch: int = 4):
        self.fn = fn
        self.spec = spec
        self.dtype = dtype
        self.batch = batch

    @torch.inference_mode()
    def push(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dtype == torch.uint8:
            if not self.spec.uint8_io:
                raise TypeError(f"model {self.spec.name!r} takes float frames in [0, 1], not uint8")
            outs = [self.fn(frames[i : i + self.batch]) for i in range(0, frames.shape[0], self.batch)]
        else:
            outs = [
                self.fn(frames[i : i + self.batch].to(self.dtype)).clamp_(0, 1)
                for i in range(0, frames.shape[0], self.batch)
            ]
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def flush(self) -> torch.Tensor:
        return torch.empty(0, 3, 0, 0)

    def reset(self) -> None:
        pass
