"""Frame conversions of the upscale path and the uint8 fast path (``ModelSpec.uint8_io``).

The CPU conversions (``to_tensor``/``to_array``) must give exactly the bytes of the plain torch formulas
below, and a model that declares ``uint8_io`` must give, through the engine and ``upscale_file``, exactly
the bytes the float path gives.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from streamvsr.media import open_reader
from streamvsr.media.synth import make_clip
from streamvsr.pipeline import run
from streamvsr.pipeline.engine import Engine
from streamvsr.pipeline.frame_model import FrameModel
from streamvsr.pipeline.protocol import ModelSpec
from streamvsr.pipeline.run import EncodeOptions, to_array, to_tensor, upscale_file

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def ref_to_tensor(frames: list[np.ndarray]) -> torch.Tensor:
    """The plain formula: integers -> float32, times 1/peak, as (T, 3, H, W)."""
    batch = np.stack(frames)
    peak = 255.0 if batch.dtype == np.uint8 else 65535.0
    return torch.from_numpy(batch.astype(np.int32)).float().mul_(1.0 / peak).permute(0, 3, 1, 2)


def ref_to_array(frames: torch.Tensor, dtype: type) -> np.ndarray:
    """The plain formula: float32(x) * peak + 0.5, clamped to [0, peak], truncated."""
    peak = 255.0 if dtype == np.uint8 else 65535.0
    x = frames.permute(0, 2, 3, 1).float().mul(peak).add_(0.5).clamp_(0, peak)
    return x.to(torch.int32).numpy().astype(dtype)


def all_values(dtype: type, h: int, w: int) -> np.ndarray:
    peak = np.iinfo(dtype).max
    return (np.arange(h * w * 3) % (peak + 1)).astype(dtype).reshape(h, w, 3)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_to_tensor_matches_formula_for_every_value(dtype: type) -> None:
    frames = [all_values(dtype, 256, 256), all_values(dtype, 256, 256)[::-1].copy()]
    x = to_tensor(frames)
    assert x.dtype == torch.float32 and x.shape == (2, 3, 256, 256)
    assert torch.equal(x, ref_to_tensor(frames))
    # and back: the float path is lossless for an identity model
    assert np.array_equal(to_array(x, dtype), np.stack(frames))


def special_values(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    edges = torch.tensor([float("inf"), -float("inf"), -0.0, -1e-9, 1.0, 1.0000001, 2.0, 3e38, -3e38])
    ties = (torch.arange(0, 600) + 0.5) / 255  # x * 255 close to k + 0.5
    ties16 = (torch.arange(0, 600) * 97 + 0.5) / 65535
    rand = torch.rand(n, generator=g) * 1.4 - 0.2
    return torch.cat([edges, ties, ties16, rand])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("in_dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
def test_to_array_matches_formula(
    dtype: type, in_dtype: torch.dtype, layout: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    t, h, w = 2, 13, 11
    v = special_values(t * 3 * h * w, seed=h)[: t * 3 * h * w]
    v = v[torch.randperm(v.numel(), generator=torch.Generator().manual_seed(0))]
    if layout == "channels_last":
        x = v.reshape(t, h, w, 3).permute(0, 3, 1, 2)
    else:
        x = v.reshape(t, 3, h, w)
    x = x.to(in_dtype)
    ref = ref_to_array(x, dtype)
    for chunk in (run._CHUNK, w * 3 * 4, 1):  # one chunk per frame, partial last chunk, one row per chunk
        monkeypatch.setattr(run, "_CHUNK", chunk)
        out = to_array(x, dtype)
        assert out.dtype == dtype and out.shape == (t, h, w, 3)
        assert np.array_equal(out, ref), chunk


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_to_array_async_on_cuda_matches_formula(dtype: type) -> None:
    """The device conversion with the copy into pinned memory, waited for from another thread."""
    import threading

    t, h, w = 3, 17, 9
    x = special_values(t * 3 * h * w, seed=w)[: t * 3 * h * w].reshape(t, h, w, 3).permute(0, 3, 1, 2)
    pending = run.to_array_async(x.cuda(), dtype)
    torch.cuda._sleep(1_000_000)  # later work on the stream does not delay the result
    got: list[np.ndarray] = []
    reader = threading.Thread(target=lambda: got.append(pending()))
    reader.start()
    reader.join()
    assert got[0].dtype == dtype and np.array_equal(got[0], ref_to_array(x, dtype))


def test_uint8_tensors_pass_through() -> None:
    frames = [all_values(np.uint8, 16, 20), all_values(np.uint8, 16, 20)[:, ::-1].copy()]
    x = to_tensor(frames, integer=True)
    assert x.dtype == torch.uint8 and x.shape == (2, 3, 16, 20)
    assert torch.equal(x, ref_to_tensor(frames).mul(255).round().to(torch.uint8))
    assert np.array_equal(to_array(x, np.uint8), np.stack(frames))
    with pytest.raises(ValueError):
        to_tensor([f.astype(np.uint16) for f in frames], integer=True)
    with pytest.raises(ValueError):
        to_array(x, np.uint16)


def nearest(scale: int):
    def fn(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=scale, mode="nearest")

    return fn


@pytest.mark.parametrize(("h", "w", "multiple"), [(13, 10, 4), (2, 9, 4), (7, 7, 1)])  # reflect, replicate, none
def test_engine_uint8_equals_float_path(h: int, w: int, multiple: int) -> None:
    g = torch.Generator().manual_seed(h * w)
    frames = [torch.randint(0, 256, (h, w, 3), dtype=torch.uint8, generator=g).numpy() for _ in range(7)]
    spec = ModelSpec("nearest", scale=2, multiple=multiple, uint8_io=True)
    outs = {}
    for integer in (False, True):
        eng = Engine(FrameModel(nearest(2), spec))
        got = eng.run(to_tensor(frames, integer=integer), chunk=3)
        assert got.dtype == (torch.uint8 if integer else torch.float32)
        assert got.shape == (7, 3, 2 * h, 2 * w)
        outs[integer] = to_array(got, np.uint8)
    assert np.array_equal(outs[True], outs[False])
    assert np.array_equal(outs[True], np.stack(frames).repeat(2, axis=1).repeat(2, axis=2))


def test_engine_uint8_checks() -> None:
    u8 = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    with pytest.raises(TypeError, match="float frames"):
        Engine(FrameModel(nearest(2), ModelSpec("nearest", scale=2))).push(u8)
    eng = Engine(FrameModel(lambda x: x.float(), ModelSpec("bad", scale=1, uint8_io=True)))
    with pytest.raises(TypeError, match="returned torch.float32"):
        eng.push(u8)
    eng = Engine(FrameModel(lambda x: x, ModelSpec("id", scale=1, uint8_io=True)))
    eng.push(u8)
    with pytest.raises(ValueError, match="dtype changed"):
        eng.push(torch.zeros(1, 3, 4, 4))
    eng.reset()
    out = eng.flush()
    assert out.shape[0] == 0
    eng.push(u8)
    assert eng.flush().dtype == torch.uint8  # empty tail of a uint8 stream keeps its dtype


class Recorder:
    """Wraps a FrameModel and records the dtype of every pushed batch."""

    def __init__(self, model: FrameModel):
        self.model = model
        self.spec = model.spec
        self.seen: set[torch.dtype] = set()

    def push(self, frames: torch.Tensor) -> torch.Tensor:
        self.seen.add(frames.dtype)
        return self.model.push(frames)

    def flush(self) -> torch.Tensor:
        return self.model.flush()

    def reset(self) -> None:
        self.model.reset()


def decode(path: Path) -> np.ndarray:
    with open_reader(path) as r:
        return np.stack([f.rgb for f in r])


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le"])
def test_upscale_file_uint8_path_equals_float_path(tmp_path: Path, pix_fmt: str) -> None:
    src = make_clip(tmp_path / "in.mkv", frames=6, width=30, height=18, pix_fmt=pix_fmt)
    eight = pix_fmt == "yuv420p"
    enc = EncodeOptions(codec="ffv1", pix_fmt="bgr0" if eight else "gbrp16le", copy_audio=False)
    outs, seen = {}, {}
    for uint8_io in (False, True):
        model = Recorder(FrameModel(nearest(2), ModelSpec("nearest", scale=2, multiple=4, uint8_io=uint8_io)))
        dst = tmp_path / f"out{int(uint8_io)}.mkv"
        res = upscale_file(src, dst, model, encode=enc, batch=4)
        assert res.frames == 6
        outs[uint8_io], seen[uint8_io] = decode(dst), model.seen
    assert seen[False] == {torch.float32}
    assert seen[True] == ({torch.uint8} if eight else {torch.float32})  # 16-bit frames take the float path
    assert np.array_equal(outs[True], outs[False])
    # lossless output: exactly the nearest-neighbour upscale of the decoded input
    assert np.array_equal(outs[True], decode(src).repeat(2, axis=1).repeat(2, axis=2))
