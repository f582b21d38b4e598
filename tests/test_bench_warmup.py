"""The benchmark's default warm-up covers a streaming model's first calls (look-ahead + 16 frames)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from streamvsr.eval.bench import benchmark
from streamvsr.pipeline.protocol import ModelSpec


class Counting:
    """Nearest x2 with a look-ahead of 3 frames; counts the frames it was pushed."""

    spec = ModelSpec(name="counting", scale=2, latency=3)

    def __init__(self) -> None:
        self.pushed = 0
        self.buf: list[torch.Tensor] = []

    def reset(self) -> None:
        self.buf = []

    def push(self, frames: torch.Tensor) -> torch.Tensor:
        self.pushed += frames.shape[0]
        self.buf += list(frames)
        ready, self.buf = self.buf[: max(0, len(self.buf) - 3)], self.buf[max(0, len(self.buf) - 3) :]
        return self._up(ready)

    def flush(self) -> torch.Tensor:
        out, self.buf = self._up(self.buf), []
        return out

    @staticmethod
    def _up(frames: list[torch.Tensor]) -> torch.Tensor:
        if not frames:
            return torch.empty(0, 3, 0, 0)
        return F.interpolate(torch.stack(frames), scale_factor=2, mode="nearest")


def test_default_warmup_is_latency_plus_16() -> None:
    m = Counting()
    res = benchmark(m, 8, 6, frames=5)
    assert res.frames == 5
    assert m.pushed == 5 + 3 + 16  # warm-up longer than the measured run still streams latency + 16 frames
    m2 = Counting()
    benchmark(m2, 8, 6, frames=5, warmup=0)
    assert m2.pushed == 5
