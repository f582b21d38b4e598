"""Engine bookkeeping: pad/crop arithmetic and one output per input, for any length and chunking."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from streamvsr.errors import InputError
from streamvsr.ops.padding import crop_output, pad_amounts, pad_frames, padded_size
from streamvsr.pipeline.engine import Engine
from streamvsr.pipeline.protocol import ModelSpec
from streamvsr.pipeline.registry import load_model


@given(st.integers(1, 5000), st.integers(1, 256))
def test_padded_size_is_smallest_multiple(size: int, multiple: int) -> None:
    p = padded_size(size, multiple)
    assert p % multiple == 0 and p >= size and p - size < multiple


@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 16), st.integers(1, 4))
@settings(max_examples=60, deadline=None)
def test_pad_then_crop_restores_size(h: int, w: int, multiple: int, scale: int) -> None:
    x = torch.rand(2, 3, h, w)
    y = pad_frames(x, multiple)
    assert y.shape[-2] % multiple == 0 and y.shape[-1] % multiple == 0
    assert torch.equal(y[..., :h, :w], x)  # padding only on bottom/right
    up = torch.nn.functional.interpolate(y, scale_factor=scale, mode="nearest")
    assert crop_output(up, h, w, scale).shape == (2, 3, h * scale, w * scale)
    assert pad_amounts(h, w, multiple) == (y.shape[-2] - h, y.shape[-1] - w)


class DelayModel:
    """A toy streaming model with look-ahead: output i appears after frame i + latency; flush pads the
    tail with copies of the last frame (possibly producing extra frames, which the engine trims)."""

    def __init__(self, latency: int, group: int, multiple: int, scale: int = 2):
        self.spec = ModelSpec("delay", scale=scale, latency=latency, multiple=multiple)
        self.group = group
        self.reset()

    def reset(self) -> None:
        self.buf: list[torch.Tensor] = []
        self.pending: list[torch.Tensor] = []
        self.seen = 0

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-1] % self.spec.multiple == 0 and x.shape[-2] % self.spec.multiple == 0
        return torch.nn.functional.interpolate(x, scale_factor=self.spec.scale, mode="nearest")

    def push(self, frames: torch.Tensor) -> torch.Tensor:
        self.pending.extend(frames)
        out = []
        # emit whole groups once `latency` further frames have arrived
        while len(self.pending) >= self.group + self.spec.latency:
            g = torch.stack(self.pending[: self.group])
            self.pending = self.pending[self.group :]
            out.append(self._up(g))
        if not out:
            return torch.empty(0, 3, 0, 0)
        return torch.cat(out)

    def flush(self) -> torch.Tensor:
        if not self.pending:
            return torch.empty(0, 3, 0, 0)
        last = self.pending[-1]
        while len(self.pending) % self.group:
            self.pending.append(last)
        out = self._up(torch.stack(self.pending))
        self.pending = []
        return out


@pytest.mark.parametrize("n", [1, 2, 7, 8, 21, 50])
@pytest.mark.parametrize("chunk", [1, 3, 8, 100])
def test_engine_one_output_per_input(n: int, chunk: int) -> None:
    torch.manual_seed(n)
    frames = torch.rand(n, 3, 13, 10)
    eng = Engine(DelayModel(latency=4, group=8, multiple=4))
    out = eng.run(frames, chunk=chunk)
    assert out.shape == (n, 3, 26, 20)
    # the output is exactly the upscaled input: no frame lost, duplicated or reordered
    ref = torch.nn.functional.interpolate(frames, scale_factor=2, mode="nearest")
    torch.testing.assert_close(out, ref)


def test_engine_chunked_equals_one_shot_with_bicubic() -> None:
    frames = torch.rand(11, 3, 9, 14)
    eng = Engine(load_model("bicubic", scale=4))
    one = eng.run(frames, chunk=11)
    chunked = eng.run(frames, chunk=2)
    assert one.shape == (11, 3, 36, 56)
    torch.testing.assert_close(one, chunked)


def test_engine_rejects_size_change() -> None:
    eng = Engine(load_model("bicubic", scale=2))
    eng.push(torch.rand(1, 3, 8, 8))
    with pytest.raises(InputError, match="frame size changed"):
        eng.push(torch.rand(1, 3, 8, 9))


def test_engine_reset_starts_new_stream() -> None:
    eng = Engine(DelayModel(latency=2, group=4, multiple=1))
    eng.push(torch.rand(3, 3, 4, 4))
    eng.reset()
    out = eng.run(torch.rand(5, 3, 6, 6))
    assert out.shape[0] == 5
