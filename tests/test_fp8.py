"""FP8 linears of the FlashVSR DiT: quantiser, emulated FP8Linear, DiT conversion; the CUDA path vs the emulation."""

from __future__ import annotations

import copy
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from streamvsr.models.flashvsr.config import SIZES, AttentionConfig
from streamvsr.models.flashvsr.dit import WanDiT
from streamvsr.models.flashvsr.fp8 import (
    DEFAULT_INCLUDE,
    FP8_MAX,
    FP8Linear,
    convert_dit_linears_to_fp8,
    dequantize_rowwise,
    fp8_gemm_device,
    fp8_supported_shape,
    gelu_quantize_rowwise,
    quantize_rowwise,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = SIZES["tiny"].dit

# e4m3 has 3 mantissa bits: round-to-nearest is within 2^-4 relative for normal values (|q| >= 2^-6), and
# within half the smallest subnormal step (2^-9 / 2) absolute below that, in units of the row scale.
E4M3_REL = 2.0**-4
E4M3_SUB_ABS = 2.0**-10


def _rel_rms(a: torch.Tensor, b: torch.Tensor) -> float:
    """RMS(a - b) / RMS(b)."""
    return ((a.double() - b.double()).pow(2).mean().sqrt() / b.double().pow(2).mean().sqrt()).item()


def _reference_quant_dequant(x: torch.Tensor) -> torch.Tensor:
    """Independent per-row quantise -> dequantise (numpy float32 division, one row at a time) as float64."""
    rows = []
    for row in x.detach().float().numpy():
        scale = np.float32(max(float(np.abs(row).max()), 1e-12)) / np.float32(448.0)  # float32, as specified
        scaled = np.clip(row / scale, np.float32(-448.0), np.float32(448.0)).astype(np.float32)
        q = torch.from_numpy(scaled).to(torch.float8_e4m3fn)
        rows.append(q.double() * float(scale))
    return torch.stack(rows)


# ----------------------------------------------------------------------------------------------
# Quantiser
# ----------------------------------------------------------------------------------------------


def test_quantize_rowwise_bounds_and_reference() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 96, generator=g) * torch.logspace(-3, 3, 64)[:, None]  # rows of very different scale
    x[5] = 0.0  # an all-zero row: scale stays finite, values 0
    q, s = quantize_rowwise(x)
    assert q.dtype == torch.float8_e4m3fn and q.shape == x.shape
    assert s.dtype == torch.float32 and s.shape == (64, 1) and bool((s > 0).all())
    qf = q.float()
    assert torch.isfinite(qf).all() and qf.abs().max() <= FP8_MAX
    # the row maximum maps to +-448 exactly: the scale is amax / 448, not something else
    nz = torch.arange(64) != 5
    assert torch.allclose(qf.abs().amax(1)[nz], torch.full((63,), FP8_MAX))
    assert torch.allclose(s[nz, 0].double(), x.abs().amax(1)[nz].double() / 448.0, rtol=1e-6)
    assert bool((qf[5] == 0).all())
    # round-to-nearest error bound of e4m3 (in units of the row scale)
    y = dequantize_rowwise(q, s)
    err = (y.double() - x.double()).abs() / s.double()
    bound = torch.maximum(E4M3_REL * (x.double().abs() / s.double()), torch.full_like(err, E4M3_SUB_ABS))
    assert bool((err <= bound * (1 + 1e-6)).all())
    assert err.max() > 0.01  # it does quantise
    # the independent reference gives the same values
    torch.testing.assert_close(y.double(), _reference_quant_dequant(x), rtol=1e-6, atol=0)


def test_quantize_rowwise_bf16_input_matches_float32() -> None:
    x = torch.randn(16, 48, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    qb, sb = quantize_rowwise(x)
    qf, sf = quantize_rowwise(x.float())
    assert torch.equal(sb, sf) and torch.equal(qb.view(torch.uint8), qf.view(torch.uint8))


# ----------------------------------------------------------------------------------------------
# FP8Linear (emulated on CPU)
# ----------------------------------------------------------------------------------------------


def _linear(k: int, n: int, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    lin = nn.Linear(k, n)
    nn.init.normal_(lin.bias, std=0.5)
    return lin


def test_fp8_linear_emulated_vs_linear() -> None:
    lin = _linear(128, 80)
    f8 = FP8Linear.from_linear(lin)
    x = torch.randn(2, 37, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = lin(x)
        out = f8(x)
    assert out.shape == ref.shape == (2, 37, 80) and out.dtype == x.dtype
    assert not f8.uses_scaled_mm(x)
    err = _rel_rms(out, ref)
    assert 1e-3 < err < 0.1, err  # close, yet clearly quantised
    # exactly the independent quantise -> dequantise -> float64 matmul
    xq = _reference_quant_dequant(x.reshape(-1, 128))
    wq = _reference_quant_dequant(lin.weight.detach())
    ind = (xq @ wq.T + lin.bias.detach().double()).reshape(2, 37, 80)
    torch.testing.assert_close(out.double(), ind, rtol=1e-5, atol=1e-5)
    # 2-D input and the dequantised weight
    with torch.no_grad():
        torch.testing.assert_close(f8(x[0]), out[0])
    torch.testing.assert_close(f8.dequantized_weight().double(), wq, rtol=1e-6, atol=0)


def test_fp8_linear_detects_a_broken_scale() -> None:
    lin = _linear(64, 32, seed=3)
    f8 = FP8Linear.from_linear(lin)
    x = torch.randn(50, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = lin(x)
        good = _rel_rms(f8(x), ref)
        assert good < 0.05
        f8.weight_scale.mul_(2.0)  # a wrong weight scale
        assert _rel_rms(f8(x), ref) > 0.5
        f8.weight_scale.div_(2.0)
        assert _rel_rms(f8(x), ref) == good
        f8.weight_scale[:, 0] = 0.0  # one wrong row scale alone is caught too
        assert _rel_rms(f8(x), ref) > 4 * good


def test_fp8_linear_no_bias_and_dtype_moves() -> None:
    lin = nn.Linear(32, 16, bias=False)
    f8 = FP8Linear.from_linear(lin)
    assert f8.bias is None
    x = torch.randn(3, 32)
    with torch.no_grad():
        assert _rel_rms(f8(x), lin(x)) < 0.1
    f8.to(torch.bfloat16)  # buffers keep their dtypes, only the bias follows
    assert f8.weight_fp8.dtype == torch.float8_e4m3fn and f8.weight_scale.dtype == torch.float32
    lb = FP8Linear.from_linear(_linear(32, 16)).to(torch.bfloat16)
    assert lb.bias.dtype == torch.bfloat16 and lb.weight_scale.dtype == torch.float32
    with torch.no_grad():
        out = lb(x.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16
    sd = lb.state_dict()
    assert set(sd) == {"weight_fp8", "weight_scale", "bias"}


def test_scaled_mm_call_layout_on_cpu_if_supported() -> None:
    """The exact ``torch._scaled_mm`` call of the CUDA path, run by the CPU kernel where torch has one."""
    f8 = FP8Linear.from_linear(_linear(64, 48, seed=4)).to(torch.bfloat16)
    x = torch.randn(40, 64, generator=torch.Generator().manual_seed(4)).to(torch.bfloat16)
    try:
        with torch.no_grad():
            out = f8._forward_scaled_mm(x)
    except (RuntimeError, NotImplementedError) as e:  # no CPU FP8 GEMM in this build
        pytest.skip(f"CPU torch._scaled_mm unavailable: {str(e).splitlines()[0]}")
    with torch.no_grad():
        emu = f8._forward_emulated(x)
    assert out.dtype == torch.bfloat16 and out.shape == (40, 48)
    assert _rel_rms(out, emu) < 1e-2


def test_supported_shapes_and_devices() -> None:
    assert fp8_supported_shape(1536, 8960) and fp8_supported_shape(64, 128)
    assert not fp8_supported_shape(1536, 8) and not fp8_supported_shape(24, 32)
    assert not fp8_gemm_device("cpu") and not fp8_gemm_device(None)
    assert not FP8Linear(32, 32).gemm_ok


# ----------------------------------------------------------------------------------------------
# DiT conversion
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_dit() -> WanDiT:
    torch.manual_seed(0)
    return WanDiT(TINY).eval()


def test_convert_count_and_what_stays(tiny_dit: WanDiT) -> None:
    m = copy.deepcopy(tiny_dit)
    n = convert_dit_linears_to_fp8(m)
    assert n == TINY.num_layers * len(DEFAULT_INCLUDE) == 16
    assert convert_dit_linears_to_fp8(m) == 0  # idempotent
    for b in m.blocks:
        for name in ("q", "k", "v", "o"):
            assert isinstance(getattr(b.self_attn, name), FP8Linear)
        assert isinstance(b.cross_attn.q, FP8Linear) and isinstance(b.cross_attn.o, FP8Linear)
        assert type(b.cross_attn.k) is nn.Linear and type(b.cross_attn.v) is nn.Linear  # once per stream
        assert isinstance(b.ffn[0], FP8Linear) and isinstance(b.ffn[2], FP8Linear)
        assert isinstance(b.ffn[1], nn.GELU)
    assert type(m.head.head) is nn.Linear
    assert all(type(x) is nn.Linear for x in m.time_embedding.modules() if isinstance(x, nn.Linear))
    assert not any(isinstance(x, FP8Linear) for x in tiny_dit.modules())  # the original is untouched
    # include selects; unsupported shapes are skipped
    m2 = copy.deepcopy(tiny_dit)
    assert convert_dit_linears_to_fp8(m2, include=("ffn.0",)) == TINY.num_layers
    m3 = copy.deepcopy(tiny_dit)
    m3.blocks[0].ffn[0] = nn.Linear(TINY.dim, 120)  # N = 120: not a multiple of 16
    m3.blocks[0].ffn[2] = nn.Linear(120, TINY.dim)
    assert convert_dit_linears_to_fp8(m3, include=("ffn.0", "ffn.2")) == 2 * TINY.num_layers - 2
    assert type(m3.blocks[0].ffn[0]) is nn.Linear


def _psnr(a: torch.Tensor, ref: torch.Tensor) -> float:
    """PSNR in dB with the reference's peak-to-peak range as the signal."""
    mse = (a.double() - ref.double()).pow(2).mean().item()
    peak = (ref.max() - ref.min()).item()
    return 10 * math.log10(peak**2 / mse) if mse > 0 else math.inf


def _two_chunks(a: WanDiT, b: WanDiT, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Both DiTs on the same random chunk (dense attention): (a's output, b's output)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 16, 2, 16, 32, generator=g)
    lq = torch.randn(1, 2 * 8 * 16, TINY.dim, generator=g)
    attn = AttentionConfig(backend="dense")
    with torch.no_grad():
        return a.forward_chunk(x, lq, attn=attn), b.forward_chunk(x, lq, attn=attn)


def test_converted_tiny_dit_close_to_original(tiny_dit: WanDiT) -> None:
    m = copy.deepcopy(tiny_dit)
    assert convert_dit_linears_to_fp8(m) == 16
    ref, out = _two_chunks(tiny_dit, m, seed=5)
    p = _psnr(out, ref)
    assert 35.0 < p < 80.0, p  # close, and not the identical bf16 model
    assert _rel_rms(out, ref) < 0.1


def test_fused_gelu_is_the_same_function(tiny_dit: WanDiT) -> None:
    """fuse_gelu moves the FFN's GELU into ffn.2's quantisation: the same model, on the emulation path too."""
    plain, fused = copy.deepcopy(tiny_dit), copy.deepcopy(tiny_dit)
    assert convert_dit_linears_to_fp8(plain) == convert_dit_linears_to_fp8(fused, fuse_gelu=True) == 16
    for b in fused.blocks:
        assert isinstance(b.ffn[1], nn.Identity) and b.ffn[2].pre_gelu and "pre_gelu=True" in repr(b.ffn[2])
    assert convert_dit_linears_to_fp8(fused, fuse_gelu=True) == 0 and isinstance(fused.blocks[0].ffn[1], nn.Identity)
    only_ffn0 = copy.deepcopy(tiny_dit)
    convert_dit_linears_to_fp8(only_ffn0, include=("ffn.0",), fuse_gelu=True)  # ffn.2 stays nn.Linear: no fusion
    assert isinstance(only_ffn0.blocks[0].ffn[1], nn.GELU)
    ref, out = _two_chunks(plain, fused, seed=7)
    assert torch.equal(out, ref)


def test_gelu_quantize_op_reference_and_fake() -> None:
    x = torch.randn(37, 96, generator=torch.Generator().manual_seed(8)).to(torch.bfloat16)
    q, s = gelu_quantize_rowwise(x)
    rq, rs = quantize_rowwise(torch.nn.functional.gelu(x, approximate="tanh"))
    assert q.dtype == torch.float8_e4m3fn and torch.equal(q.float(), rq.float()) and torch.equal(s, rs)
    assert torch.equal(torch.ops.streamvsr.gelu_fp8_rowwise(x)[1], rs)
    torch.library.opcheck(torch.ops.streamvsr.gelu_fp8_rowwise.default, (x,))  # fake shapes, schema


# ----------------------------------------------------------------------------------------------
# CUDA: the torch._scaled_mm path must match the emulation
# ----------------------------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("shape", [(8448, 8960), (300, 8960), (64, 1536), (5, 100)])
def test_cuda_gelu_quantize_kernel_matches_the_reference(shape: tuple[int, int]) -> None:
    """The Triton kernel against the two-step reference on the GPU: the same scales, and quantised values that
    differ by at most one e4m3 step where the GELU's last float rounding differs."""
    if torch.cuda.get_device_capability()[0] < 9:
        pytest.skip("FP8 conversion in Triton needs sm89+; the FP8 path is Hopper's")
    pytest.importorskip("triton")
    torch.manual_seed(9)
    x = (torch.randn(*shape, device="cuda") * 3).to(torch.bfloat16)
    q, s = gelu_quantize_rowwise(x)
    rq, rs = quantize_rowwise(torch.nn.functional.gelu(x, approximate="tanh"))
    torch.testing.assert_close(s, rs, rtol=1e-2, atol=0)  # an amax off by a bf16 rounding at most
    qf, rqf = q.float(), rq.float()
    # one e4m3 step at the reference's magnitude (2^(e - 3) for normal values, 2^-9 below 2^-6), in output units
    # (with room for the float32 rounding of the products), plus what a slightly different row scale moves. The
    # kernel's GELU (x * sigmoid(2u)) is more exact in the tail than 0.5 x (1 + tanh u), where 1 + tanh cancels:
    # one step is what that difference can reach after e4m3 rounding.
    e = torch.floor(torch.log2(rqf.abs().clamp(min=2.0**-6)))
    tol = torch.exp2(e - 3) * rs * 1.001 + rqf.abs() * (s - rs).abs()
    assert ((qf * s - rqf * rs).abs() <= tol).all()
    assert (qf != rqf).float().mean() < 0.01


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fused_gelu_linear_matches_unfused() -> None:
    if torch.cuda.get_device_capability()[0] < 9:
        pytest.skip("rowwise FP8 _scaled_mm needs sm90+")
    torch.manual_seed(10)
    ffn = nn.Sequential(nn.Linear(256, 1024), nn.GELU(approximate="tanh"), nn.Linear(1024, 256)).cuda().bfloat16()
    plain = nn.Sequential(ffn[0], ffn[1], FP8Linear.from_linear(ffn[2]))
    fused = nn.Sequential(ffn[0], nn.Identity(), FP8Linear.from_linear(ffn[2]))
    fused[2].pre_gelu = True
    x = torch.randn(2, 700, 256, device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        a, b = plain(x).float(), fused(x).float()
        c = torch.compile(fused)(x).float()  # the op stays opaque inside a compiled graph
    assert _rel_rms(b, a) < 0.02 and _rel_rms(c, a) < 0.02


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(
    "shape", [(1, 200, 256, 512), (2, 129, 1536, 1536), (1, 64, 8960, 1536), (1, 4096, 8960, 1536)]
)
def test_cuda_scaled_mm_matches_emulation(shape: tuple[int, int, int, int]) -> None:
    major, _ = torch.cuda.get_device_capability()
    if major < 9:
        pytest.skip("rowwise FP8 _scaled_mm needs sm90+")
    b, l, k, n = shape
    torch.manual_seed(6)
    lin = nn.Linear(k, n, device="cuda", dtype=torch.bfloat16)
    nn.init.normal_(lin.bias, std=0.5)
    f8 = FP8Linear.from_linear(lin)
    x = torch.randn(b, l, k, device="cuda", dtype=torch.bfloat16)
    assert f8.uses_scaled_mm(x)
    with torch.no_grad():
        out = f8(x)
        emu = f8._forward_emulated(x.reshape(-1, k)).reshape(b, l, n)
        ref = lin(x)
    assert out.dtype == torch.bfloat16 and out.shape == (b, l, n)
    # same fp8 operands: only the accumulation order and the bf16 output rounding differ
    assert _rel_rms(out, emu) < 1e-2
    assert (out.float() - emu.float()).abs().max() <= 2e-2 * emu.float().abs().max()
    assert _rel_rms(out, ref) < 0.1
    # fast accumulation stays close too
    f8.use_fast_accum = True
    with torch.no_grad():
        assert _rel_rms(f8(x), emu) < 2e-2
    if b * l >= 1024:  # the DiT's row counts must take the FP8 GEMM, not the fallback
        assert not f8.fallback_rows


def test_scaled_mm_rejection_falls_back_to_the_emulation(monkeypatch: pytest.MonkeyPatch) -> None:
    """A shape cuBLASLt rejects is emulated (same numbers) and remembered; other errors propagate."""
    f8 = FP8Linear.from_linear(_linear(64, 48, seed=5))
    x = torch.randn(40, 64, generator=torch.Generator().manual_seed(5))
    calls = []

    def reject(q: torch.Tensor, s: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        calls.append(q.shape[0])
        raise RuntimeError("CUDA error: CUBLAS_STATUS_NOT_SUPPORTED when calling `cublasLtMatmulAlgoGetHeuristic`")

    monkeypatch.setattr(f8, "_scaled_mm", reject)
    with torch.no_grad():
        out = f8._forward_scaled_mm(x)
        assert torch.equal(out, f8._forward_emulated(x))
        f8._forward_scaled_mm(x)
    assert calls == [40] and f8.fallback_rows == {40}  # asked once per row count

    def broken(q: torch.Tensor, s: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(f8, "_scaled_mm", broken)
    with pytest.raises(RuntimeError, match="illegal"):
        f8._forward_scaled_mm(x[:7])


# ----------------------------------------------------------------------------------------------
# Benchmark levers (bench/flashvsr.py)
# ----------------------------------------------------------------------------------------------

BENCH = Path(__file__).resolve().parents[1] / "bench" / "flashvsr.py"


@pytest.fixture(scope="module")
def bench():  # noqa: ANN201
    spec = importlib.util.spec_from_file_location("bench_flashvsr_fp8", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_parse_levers(bench) -> None:  # noqa: ANN001
    assert bench._parse_levers("none,fp8,compile,compile+fp8,fp8") == ["none", "fp8", "compile", "fp8+compile"]
    assert bench._parse_levers("") == ["none"]
    with pytest.raises(ValueError, match="unknown lever"):
        bench._parse_levers("none,int4")
    assert bench._parse_levers("compile+gelu+fp8") == ["fp8+gelu+compile"]
    with pytest.raises(ValueError, match="gelu goes with fp8"):
        bench._parse_levers("gelu")
    assert bench._parse_levers("rope32+compile,tail+epi") == ["compile+rope32", "epi+tail"]


def test_bench_rope32_lever_sets_the_dit_flag(bench, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    seen = []
    from streamvsr.models.flashvsr.dit import WanDiT

    real = WanDiT.rope

    def spy(self, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen.append(self.rope_fp32_for_half)
        return real(self, *a, **k)

    monkeypatch.setattr(WanDiT, "rope", spy)
    args = ["--size", "tiny", "--device", "cpu", "--sizes", "128x128", "--frames", "2", "--backends", "dense"]
    results = bench.main([*args, "--quick", "--levers", "rope32,none"])
    assert [r["lever"] for r in results] == ["rope32", "none"] and all(r["finite"] for r in results)
    assert True in seen and seen[-1] is False  # on for the rope32 row, off again for the plain one


def test_bench_fp8_lever_rows(bench, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "r.json"
    args = ["--size", "tiny", "--device", "cpu", "--sizes", "128x128", "--frames", "2", "--backends", "dense"]
    levers = ["--levers", "fp8+gelu,fp8,none"]
    results = bench.main([*args, "--quick", *levers, "--psnr-frames", "9", "--json", str(out)])
    assert [r["label"] for r in results] == ["dense", "dense+fp8", "dense+fp8+gelu"]  # one-way levers last
    base, f8, fused = results
    assert fused["fp8_gelu_fused"] and fused["fp8_linears"] == 16 and not f8["fp8_gelu_fused"]
    assert fused["fp8_psnr_db"] == f8["fp8_psnr_db"]  # the same function (emulation path on the CPU)
    assert "psnr_vs_bf16_db" not in base and base["lever"] == "none"
    assert f8["fp8_linears"] == 16 and f8["finite"] and f8["fps"] > 0
    assert 40.0 < f8["fp8_psnr_db"] < 200.0  # close to the plain model, yet not identical
    data = json.loads(out.read_text())
    assert data["meta"]["levers"] == ["fp8+gelu", "fp8", "none"]
    assert data["results"][1]["fp8_psnr_db"] == f8["fp8_psnr_db"]
