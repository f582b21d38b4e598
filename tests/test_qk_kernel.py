"""The projection step's q/k tail as one op (``models.flashvsr.qk_kernel``): the Triton kernel against the reference
under Triton's interpreter (float16: the interpreter truncates when it converts to bfloat16) and on CUDA (bf16);
``DiTBlock.fused_qk`` gives the reference's stream, eager and inside a compiled ``pre``."""

from __future__ import annotations

import pytest
import torch
from test_flashvsr_dit import TINY, _stream
from triton_interp import run_interpreted

from streamvsr.models.flashvsr.config import AttentionConfig
from streamvsr.models.flashvsr.dit import WanDiT
from streamvsr.pipeline.flashvsr import compile_dit

_CHECK = r"""
import torch
from streamvsr.models.flashvsr import qk_kernel as QK

torch.manual_seed(0)
H, d, block = 3, 16, 8
for fill in (None, torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 13, 13])):
    Lc = 16 if fill is None else 14
    x = (torch.randn(2, Lc, H * d) * 3).half()
    w = (torch.rand(H * d) + 0.5).half()
    ang = torch.rand(16, d // 2) * 6
    cos, sin = ang.cos(), ang.sin()
    ref, refm = QK.qk_norm_rope_reference(x, w, 1e-6, cos, sin, H, block, fill)
    for bt in (4, 8):
        got, gotm = QK.qk_norm_rope(x, w, 1e-6, cos, sin, H, block, fill, rows_per_program=bt, num_warps=1)
        assert got.dtype == ref.dtype and got.shape == ref.shape and got.is_contiguous()
        assert gotm.shape == refm.shape and gotm.stride() == refm.stride()
        scale = ref.float().abs().max().item()
        assert (got.float() - ref.float()).abs().max().item() <= 2e-3 * scale
        assert (got != ref).float().mean().item() < 0.05  # other summation order: a rounding step here and there
        assert (gotm.float() - refm.float()).abs().max().item() <= 2e-3
        assert not torch.equal(got, QK.qk_norm_rope_reference(x, w * 2, 1e-6, cos, sin, H, block, fill)[0])
print("ok")
"""


def test_kernel_matches_the_reference_under_the_interpreter() -> None:
    run_interpreted(_CHECK)


def test_fused_qk_gives_the_reference_stream_eager_and_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the CPU the op runs the reference math, so the stream is the same bit for bit; the op also goes through
    torch.compile of ``pre`` (dynamo's eager backend) whole. With float64 RoPE tables the op is not used."""
    from streamvsr.models.flashvsr import qk_kernel as QK

    torch.manual_seed(0)
    m = WanDiT(TINY).eval().to(torch.bfloat16)
    assert not any(b.fused_qk for b in m.blocks)  # off by default
    x = torch.randn(1, 16, 12, 16, 64).to(torch.bfloat16)
    lq = torch.randn(1, 12 * 8 * 32, TINY.dim).to(torch.bfloat16)
    attn = AttentionConfig(sparse_ratio=0.08, local_range=3, backend="dense")
    calls = []
    orig = QK.qk_norm_rope_reference

    def counted(*a, **k):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        return orig(*a, **k)

    monkeypatch.setattr(QK, "qk_norm_rope_reference", counted)

    def stream() -> torch.Tensor:
        with torch.no_grad():
            return _stream(m, x, lq, attn, "shared")

    for b in m.blocks:
        b.fused_qk = True
    stream()
    assert not calls  # float64 tables: the reference layers
    m.rope_fp32_for_half = True
    for b in m.blocks:
        b.fused_qk = False
    ref = stream()
    for b in m.blocks:
        b.fused_qk = True
    got = stream()
    assert calls  # the fused path ran (its reference math on the CPU)
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    torch._dynamo.reset()
    handle = compile_dit(m, backend="eager")
    try:
        calls.clear()
        torch.testing.assert_close(stream(), ref, rtol=0, atol=0)
        assert calls
    finally:
        handle.undo()
        torch._dynamo.reset()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_kernel_matches_the_reference_on_cuda() -> None:
    from streamvsr.models.flashvsr import qk_kernel as QK

    torch.manual_seed(3)
    H, d, block, L = 12, 128, 128, 8448
    for fill in (None, torch.cat([torch.arange(8000), torch.full((448,), 7999)]).cuda()):
        Lc = L if fill is None else 8000
        x = (torch.randn(1, Lc, H * d, device="cuda") * 2).to(torch.bfloat16)
        w = (torch.rand(H * d, device="cuda") + 0.5).to(torch.bfloat16)
        ang = torch.rand(L, d // 2, device="cuda") * 100
        cos, sin = ang.cos(), ang.sin()
        ref, refm = QK.qk_norm_rope_reference(x, w, 1e-6, cos, sin, H, block, fill)
        got, gotm = QK.qk_norm_rope(x, w, 1e-6, cos, sin, H, block, fill)
        scale = ref.float().abs().max().item()  # a bf16 step is up to 2**-7 of a value: allow two at the largest
        assert (got.float() - ref.float()).abs().max().item() <= 2**-6 * scale
        assert (got != ref).float().mean().item() < 0.02  # other summation order: a rounding step here and there
        assert (gotm.float() - refm.float()).abs().max().item() <= 2**-6 * refm.float().abs().max().item()
