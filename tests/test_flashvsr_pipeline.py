"""Streaming FlashVSR upscaler: bookkeeping, frame counts, chunking invariance, noise, alignment."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from streamvsr.errors import InputError, ModelError
from streamvsr.models.flashvsr.config import SIZES
from streamvsr.pipeline.engine import Engine
from streamvsr.pipeline.flashvsr import (
    DENSE_MAX_BLOCKS,
    FlashVSRUpscaler,
    auto_attention_backend,
    blocks_per_window,
    call_schedule,
    lookahead,
    official_frame_count,
    padded_frame_count,
)

TINY = SIZES["tiny"]
LR = 32  # LR 32x32 -> output 128x128 = one 8x8 token block per latent window


@pytest.fixture(scope="module")
def up() -> FlashVSRUpscaler:
    return FlashVSRUpscaler.from_config(TINY, seed=0)


def test_bookkeeping_pure() -> None:
    assert [padded_frame_count(n) for n in (1, 7, 21, 22, 29, 30, 50)] == [25, 25, 25, 33, 33, 41, 57]
    assert official_frame_count(30) == 33 and official_frame_count(101) == 105
    calls = call_schedule(8)
    assert [(c.a, c.b, c.out_start, c.out_end, c.need) for c in calls] == [(0, 6, 0, 21, 24), (6, 8, 21, 29, 32)]
    k = 3  # call k: latents 4+2k, 5+2k; outputs 8k+13 .. 8k+20; needs frame 8k+24
    c = call_schedule(20)[k]
    assert (c.a, c.b, c.out_start, c.out_end - 1, c.need) == (4 + 2 * k, 6 + 2 * k, 8 * k + 13, 8 * k + 20, 8 * k + 24)
    assert lookahead() == (24, 11)


def test_spec(up: FlashVSRUpscaler) -> None:
    assert up.spec.scale == 4 and up.spec.multiple == 4 and up.spec.latency == 24  # pad_to="tokens"
    try:
        up.pad_to = "windows"
        assert up.spec.multiple == 32
        with pytest.raises(ModelError):
            up.pad_to = "rows"
    finally:
        up.pad_to = "tokens"


@pytest.mark.parametrize("n", [1, 7, 21, 50])
def test_one_output_per_input(up: FlashVSRUpscaler, n: int) -> None:
    torch.manual_seed(n)
    x = torch.rand(n, 3, LR, LR)
    out = Engine(up).run(x, chunk=8)
    assert out.shape == (n, 3, 4 * LR, 4 * LR)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_raw_outputs_and_timing(up: FlashVSRUpscaler) -> None:
    up.reset()
    x = torch.rand(33, 3, LR, LR)
    assert up.push(x[:24]).shape[0] == 0  # nothing before 25 frames
    assert up.push(x[24:25]).shape[0] == 21  # call 0: frames 0..20
    assert up.push(x[25:32]).shape[0] == 0
    assert up.push(x[32:33]).shape[0] == 8  # call 1: frames 21..28
    assert up.kv.windows[0] == 3 and len(up._hr) <= 12  # bounded state
    rest = up.flush()  # 33 real frames -> F = 41 -> 37 outputs in all
    assert rest.shape[0] == 37 - 29
    assert up.kv.get(0) is None and not up._hr  # flush ends the stream


def _run(up: FlashVSRUpscaler, x: torch.Tensor, step: int) -> torch.Tensor:
    up.reset()
    outs = [up.push(x[i : i + step]) for i in range(0, x.shape[0], step)]
    outs.append(up.flush())
    return torch.cat([o for o in outs if o.shape[0]])


def test_chunked_push_is_invariant(up: FlashVSRUpscaler) -> None:
    torch.manual_seed(7)
    x = torch.rand(26, 3, LR, LR)  # call 0, one steady call, tail padding at flush
    ref = _run(up, x, 26)
    assert ref.shape[0] == padded_frame_count(26) - 4
    for step in (1, 3, 8):
        assert torch.allclose(_run(up, x, step), ref, atol=1e-5), step
    # the same seed gives the same stream; another seed does not
    other = FlashVSRUpscaler(up.dit, up.lq_proj, up.decoder, TINY, seed=1)
    first = other.push(x[:25])
    assert first.shape[0] == 21 and (first - ref[:21]).abs().max() > 1e-4


class _ScaledLatents(torch.nn.Module):
    """The decoder with its latents scaled by ``k`` first: the reference for ``detail=k``."""

    def __init__(self, decoder: torch.nn.Module, k: float):
        super().__init__()
        self.inner, self.k, self.cfg = decoder, k, decoder.cfg

    def decode(self, z: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return self.inner.decode(z * self.k, *args, **kwargs)

    def reset(self) -> None:
        self.inner.reset()


def test_detail_scales_the_latents_before_the_decoder(up: FlashVSRUpscaler) -> None:
    torch.manual_seed(5)
    x = torch.rand(26, 3, LR, LR)
    for k in (0.0, 0.5, 1.5):
        ours = FlashVSRUpscaler(up.dit, up.lq_proj, up.decoder, TINY, seed=0, detail=k)
        ref = FlashVSRUpscaler(up.dit, up.lq_proj, _ScaledLatents(up.decoder, k), TINY, seed=0)
        a = _run(ours, x, 26)
        assert torch.allclose(a, _run(ref, x, 26), atol=1e-6), k
        assert torch.allclose(_run(ours, x, 3), a, atol=1e-5), k  # chunking stays invariant
    # at 0 the DiT no longer matters: another noise seed gives the same frames (at 1 it does not)
    zero = [_run(FlashVSRUpscaler(up.dit, up.lq_proj, up.decoder, TINY, seed=s, detail=0.0), x, 26) for s in (0, 1)]
    assert torch.equal(zero[0], zero[1])
    full = [_run(FlashVSRUpscaler(up.dit, up.lq_proj, up.decoder, TINY, seed=s), x, 26) for s in (0, 1)]
    assert (full[0] - full[1]).abs().max() > 1e-4


def test_detail_is_checked(up: FlashVSRUpscaler) -> None:
    for bad in (-0.1, 2.5, float("nan")):
        with pytest.raises(ModelError, match="detail must be in"):
            FlashVSRUpscaler(up.dit, up.lq_proj, up.decoder, TINY, detail=bad)
    with pytest.raises(ModelError, match="sees the LR frames"):  # an unconditional decoder (Wan VAE)
        FlashVSRUpscaler(up.dit, up.lq_proj, torch.nn.Identity(), TINY, detail=0.5)


def _capture_noise(up: FlashVSRUpscaler) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    orig = up.dit.forward_chunk

    def spy(x: torch.Tensor, *a: object, **k: object) -> torch.Tensor:
        seen.append(x.clone())
        return orig(x, *a, **k)

    up.dit.forward_chunk = spy  # type: ignore[method-assign]
    return seen


def test_official_noise_is_one_whole_video_draw() -> None:
    n = 30  # official F = 33 (8 latents); our tail padding needs F = 41 (2 more latents)
    up = FlashVSRUpscaler.from_config(TINY, noise="official", num_frames=n, seed=123, color_fix="wavelet")
    seen = _capture_noise(up)
    out = Engine(up).run(torch.rand(n, 3, LR, LR), chunk=5)
    assert out.shape[0] == n
    used = torch.cat(seen, dim=2)
    t_off = (official_frame_count(n) - 1) // 4
    g = torch.Generator().manual_seed(123)
    manual = torch.randn((1, 16, t_off, LR // 2, LR // 2), generator=g, dtype=torch.float32)
    assert used.shape[2] == (padded_frame_count(n) - 1) // 4
    assert torch.equal(used[:, :, :t_off], manual)


def test_official_noise_needs_frame_count() -> None:
    with pytest.raises(ModelError):
        FlashVSRUpscaler.from_config(TINY, noise="official")


def test_model_without_learned_context_needs_prompt() -> None:
    cfg = dataclasses.replace(TINY, dit=dataclasses.replace(TINY.dit, learned_context=False))
    with pytest.raises(ModelError):
        FlashVSRUpscaler.from_config(cfg)
    ctx = torch.randn(1, cfg.dit.text_len, cfg.dit.text_dim)
    up = FlashVSRUpscaler.from_config(cfg, context=ctx)
    assert Engine(up).run(torch.rand(2, 3, LR, LR)).shape == (2, 3, 4 * LR, 4 * LR)


def test_lq_and_decoder_alignment(up: FlashVSRUpscaler) -> None:
    """Frame i has the constant value i/64: check what the projector and the decoder are fed."""
    lq_seen: list[list[float]] = []
    cond_seen: list[list[float]] = []
    lq_step, dec_decode = up.lq_proj.step, up.decoder.decode

    def vals(fr: torch.Tensor) -> list[float]:
        return [round((fr[0, 0, i, 0, 0].item() + 1) / 2 * 64) for i in range(fr.shape[2])]

    def lq_spy(frames: torch.Tensor) -> torch.Tensor | None:
        lq_seen.append(vals(frames))
        return lq_step(frames)

    def dec_spy(lat: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        cond_seen.append(vals(cond))
        return dec_decode(lat, cond)

    up.lq_proj.step, up.decoder.decode = lq_spy, dec_spy  # type: ignore[method-assign]
    try:
        up.reset()
        x = (torch.arange(33, dtype=torch.float32) / 64).view(33, 1, 1, 1).expand(33, 3, LR, LR)
        for i in range(33):
            up.push(x[i : i + 1])
    finally:
        del up.lq_proj.step, up.decoder.decode
    flat = [v for clip in lq_seen for v in clip]
    assert lq_seen[0] == [0] and flat == list(range(33))  # warm-up [f0], then clips 4t+1..4t+4
    assert all(len(c) == 4 for c in lq_seen[1:])
    assert cond_seen == [list(range(21)), list(range(21, 29))]  # latent t <-> frames 4t-3..4t


def test_pillow_upsample_option(up: FlashVSRUpscaler) -> None:
    pil = FlashVSRUpscaler(up.dit, up.lq_proj, up.decoder, TINY, lq_upsample="pillow")
    x = torch.rand(3, 3, LR, LR)
    a, b = pil._upsample(x), up._upsample(x)
    assert a.shape == b.shape == (3, 3, 4 * LR, 4 * LR)
    assert a.min() >= -1 and a.max() <= 1
    assert 0 < (a - b).abs().mean() < 0.05  # same bicubic family, different kernels
    # uint8 quantisation: an input that is already on the 1/255 grid gives the same result
    q = (x * 255).round() / 255
    assert torch.equal(pil._upsample(q), a)
    # the accelerator path (bit-exact tensor version of Pillow) gives the same frames as Pillow itself
    assert not pil.pillow_on_device  # a CPU run uses Pillow
    pil.pillow_on_device = True
    assert torch.equal(pil._upsample(x), a)


def test_fast_size_runs_with_patch_4_and_one_cached_window():
    """The planned default size (patch 4 on the latent, kv_windows 1): sizes and counts stay exact."""
    from streamvsr.models.flashvsr.config import SIZES
    from streamvsr.pipeline.engine import Engine
    from streamvsr.pipeline.flashvsr import FlashVSRUpscaler

    torch.manual_seed(0)
    up = FlashVSRUpscaler.from_config(SIZES["fast"], color_fix="none")
    assert up.spec.multiple * 4 == 32  # output padded to whole tokens of 32 px (the DiT pads to whole windows)
    up.pad_to = "windows"
    assert up.spec.multiple * 4 == 256  # whole 8x8-token blocks
    up.pad_to = "tokens"
    out = Engine(up).run(torch.rand(3, 3, 20, 30), chunk=2)
    assert out.shape == (3, 3, 80, 120)
    assert torch.isfinite(out).all()


def test_auto_attention_picks_dense_for_small_grids_on_cuda() -> None:
    """The measured points (docs/performance.md, evening of 2026-11-26): our `fast` model at 1280x720 output
    (padded to 768x1280, 15 blocks) streams with the dense kernel, at 1920x1080 (padded to 1280x2048, 40 blocks) with
    FlexAttention; the official size at 768x1408 has 66 blocks."""
    fast, official = SIZES["fast"], SIZES["official-1.3b"]
    assert blocks_per_window((768 // 8, 1280 // 8), fast.dit.patch, fast.attention.window) == 15
    assert blocks_per_window((1280 // 8, 2048 // 8), fast.dit.patch, fast.attention.window) == 40
    assert blocks_per_window((768 // 8, 1408 // 8), official.dit.patch, official.attention.window) == 66
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert auto_attention_backend(cuda, 15) == "dense" and auto_attention_backend(cuda, DENSE_MAX_BLOCKS) == "dense"
    assert auto_attention_backend(cuda, DENSE_MAX_BLOCKS + 1) == "flex" and auto_attention_backend(cuda, 66) == "flex"
    assert auto_attention_backend(cpu, 66) == "dense"


def test_auto_attention_is_decided_per_call(up: FlashVSRUpscaler, monkeypatch) -> None:  # noqa: ANN001
    """An upscaler built with backend "auto" hands the DiT a concrete backend, never "auto"."""
    seen = []
    real = up.dit.forward_chunk

    def spy(*a, **k):  # noqa: ANN002, ANN003, ANN202
        seen.append(k["attn"].backend)
        return real(*a, **k)

    monkeypatch.setattr(up.dit, "forward_chunk", spy)
    monkeypatch.setattr(up, "attention", dataclasses.replace(up.attention, backend="auto"))
    up.reset()
    Engine(up).run(torch.rand(30, 3, LR, LR), chunk=8)
    assert seen and set(seen) == {"dense"}  # CPU


def test_streams_are_off_without_cuda(up: FlashVSRUpscaler) -> None:
    cpu = FlashVSRUpscaler(up.dit, up.lq_proj, up.decoder, TINY, streams=True)
    assert not cpu.streams and not cpu.spec.host_input  # a CPU model has no streams; the engine moves frames
    assert cpu.stream_priority == "work"
    with pytest.raises(ModelError, match="stream_priority"):
        cpu.stream_priority = "fast"
    with pytest.raises(ModelError, match="kv_layout"):
        FlashVSRUpscaler(up.dit, up.lq_proj, up.decoder, TINY, kv_layout="ring")


@pytest.mark.parametrize("lq_upsample", ["torch", "pillow"])
def test_uint8_frames_give_the_rounded_float_frames(lq_upsample: str) -> None:
    """8-bit video pushed as integers (spec.uint8_io) gives, as uint8, exactly the float path's frames rounded
    the way the CLI rounds them (run.to_array), and frame counts match."""
    from streamvsr.pipeline.run import to_array, to_tensor

    torch.manual_seed(5)
    u8 = [np.random.default_rng(i).integers(0, 256, (LR, LR, 3), dtype=np.uint8) for i in range(30)]
    up = FlashVSRUpscaler.from_config(TINY, seed=0, lq_upsample=lq_upsample)
    assert up.spec.uint8_io
    ref = Engine(up).run(to_tensor(u8), chunk=8)  # float frames in [0, 1], as the CLI made them until now
    got = Engine(up).run(to_tensor(u8, integer=True), chunk=8)
    assert got.dtype == torch.uint8 and got.shape == ref.shape
    assert np.array_equal(got.permute(0, 2, 3, 1).numpy(), to_array(ref, np.uint8))
    with pytest.raises(InputError, match="dtype changed"):
        up.push(to_tensor(u8[:8], integer=True))
        up.push(to_tensor(u8[8:16]))
    up.reset()


@pytest.mark.parametrize("layout", ["shared", "spare", "lean"])
def test_kv_layouts_give_the_same_frames(layout: str) -> None:
    """The KV cache's layout changes where keys live and the order they are summed in, not the frames."""
    torch.manual_seed(4)
    x = torch.rand(45, 3, LR, LR)  # call 0 and 4 steady calls: the caches evict, the shared ring wraps
    ref = Engine(FlashVSRUpscaler.from_config(TINY, seed=0, kv_layout="lean", dtype=torch.float64)).run(x, chunk=8)
    up = FlashVSRUpscaler.from_config(TINY, seed=0, kv_layout=layout, dtype=torch.float64)
    got = Engine(up).run(x, chunk=8)
    assert type(up.kv).__name__ == ("SharedKVCache" if layout == "shared" else "KVCache")
    assert got.shape == ref.shape and torch.allclose(got, ref, rtol=0, atol=1e-9)


class _HostProbe:
    """A model that records the device of the frames it is given (host_input declared or not)."""

    def __init__(self, host_input: bool):
        from streamvsr.pipeline.protocol import ModelSpec

        self.spec = ModelSpec("probe", 1, host_input=host_input)
        self.seen: list[str] = []

    def push(self, frames: torch.Tensor) -> torch.Tensor:
        self.seen.append(frames.device.type)
        return frames

    def flush(self) -> torch.Tensor:
        return torch.empty(0, 3, 0, 0)

    def reset(self) -> None:
        pass


@pytest.mark.parametrize("host_input", [False, True])
def test_engine_hands_host_frames_to_host_input_models(host_input: bool) -> None:
    device = "meta"  # any device but the host's: the engine must move frames there unless the model takes host frames
    probe = _HostProbe(host_input)
    Engine(probe, device=device).push(torch.rand(2, 3, 4, 4))
    assert probe.seen == ["cpu" if host_input else "meta"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("host", [False, True])
def test_streams_give_the_same_frames_on_cuda(host: bool) -> None:
    """The decoder on its own stream beside the next DiT call: the same outputs, bit for bit, whether the
    caller pushes host frames (copied on the work stream) or device frames (made on the caller's stream)."""
    up = FlashVSRUpscaler.from_config(TINY, device="cuda", dtype=torch.float32, seed=0)
    torch.manual_seed(3)
    x = torch.rand(45, 3, LR, LR)
    ref = Engine(up, device="cuda").run(x.cuda(), chunk=8)
    up.streams = True
    assert up.spec.host_input
    src = x if host else x.cuda()
    engine = Engine(up, device="cuda")
    outs = []
    for i in range(0, x.shape[0], 8):
        outs.append(engine.push(src[i : i + 8]))
        torch.cuda._sleep(1_000_000)  # the caller's stream is busy: the upscaler's streams must not wait for it
    outs.append(engine.flush())
    got = torch.cat(outs)
    assert got.shape == ref.shape and torch.equal(got, ref)


def test_bf16_models_with_lq_residual_keep_the_bicubic_frames_in_float16() -> None:
    """A bf16 model whose decoder adds its output to the bicubic frames (lq_residual) must not round those frames
    (and so the output) to bf16: at initialisation the decoder adds zero, so the output is the bicubic upsampling,
    within float16's rounding of the float32 run's output (kept in bf16 they were off by 9.8e-4)."""
    cfg = dataclasses.replace(TINY, decoder=dataclasses.replace(TINY.decoder, lq_residual=True, cond_channels=768))
    torch.manual_seed(0)
    x = torch.rand(30, 3, LR, LR)
    outs = {}
    for dtype in (torch.float32, torch.bfloat16):
        up = FlashVSRUpscaler.from_config(cfg, seed=0, color_fix="none", dtype=dtype)
        assert up.hr_dtype == (torch.float16 if dtype == torch.bfloat16 else torch.float32)
        outs[dtype] = Engine(up).run(x, chunk=8)
    err = (outs[torch.float32] - outs[torch.bfloat16]).abs().max().item()
    assert err < 5e-4, err


def test_registry_passes_pad_to() -> None:
    """load_model's pad_to reaches the upscaler (the CLI's --pad-to); the frames' multiple follows it."""
    from streamvsr.pipeline.registry import load_model

    assert load_model("flashvsr-fast").pad_to == "tokens"
    m = load_model("flashvsr-fast", pad_to="windows")
    assert m.pad_to == "windows" and m.spec.multiple == 64  # 8 tokens of 32 px = 256 output px
    with pytest.raises(ModelError):
        load_model("flashvsr-fast", pad_to="pixels")
