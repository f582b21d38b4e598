"""The fused input and output steps (``ops.frame_kernels``) against the eager ones: the same values, bit for bit.

On the CPU under Triton's interpreter (float32 and float16: the interpreter truncates instead of rounding when it
converts to bfloat16), on CUDA (marked gpu) in bfloat16 as the pipeline runs it.
"""

from __future__ import annotations

import pytest
import torch
from triton_interp import run_interpreted

_CHECK = r"""
import torch
from streamvsr.ops import frame_kernels as CK
from streamvsr.ops.color import adain_stats
from streamvsr.pipeline import flashvsr as P

torch.manual_seed(0)
P.set_fused_finish(False)
for dt in (torch.float32, torch.float16):
    raw = (torch.randn(1, 3, 2, 24, 40) * 0.7 + 0.1).to(dt)
    raw[0, 0, 0, :2] = 3.0  # clamped
    sr = raw[0].transpose(0, 1)  # (T, 3, H, W) view of the decoder's output, planes contiguous
    ref = (torch.rand(2, 3, 24, 40) * 2 - 1).half()
    for fix in ("adain", "none"):
        for u8 in (True, False):
            want = P.finish_frames(sr, ref, fix, u8)
            got = CK.finish(sr, adain_stats(sr, ref) if fix == "adain" else None, u8, block=256)
            assert got.dtype == want.dtype and torch.equal(got, want), (dt, fix, u8)
            assert got.is_contiguous()
x = torch.rand(2, 3, 24, 40) * 1.4 - 0.2  # outside [0, 1] too, as bicubic overshoots
x[0, 0, 0, :3] = torch.tensor([0.0, 1.0, 0.5])
for dt in (torch.float16, torch.float32):
    assert torch.equal(CK.signed(x, dt, block=512), (x.clamp(0, 1) * 2 - 1).to(dt)), dt
print("ok")
"""


def test_fused_finish_equals_the_eager_steps_under_the_interpreter() -> None:
    run_interpreted(_CHECK)


def test_fused_finish_is_on_by_default_and_needs_cuda() -> None:
    from streamvsr.ops import frame_kernels as CK
    from streamvsr.pipeline import flashvsr as P

    assert P.get_fused_finish()
    assert not CK.available(torch.zeros(1))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fused_input_step_equals_the_eager_steps_on_cuda() -> None:
    from streamvsr.ops import frame_kernels as CK

    torch.manual_seed(4)
    x = torch.rand(8, 3, 768, 1408, device="cuda") * 1.4 - 0.2
    for dt in (torch.float16, torch.bfloat16):
        assert torch.equal(CK.signed(x, dt), (x.clamp(0, 1) * 2 - 1).to(dt)), dt


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fused_finish_equals_the_eager_steps_on_cuda() -> None:
    from streamvsr.pipeline import flashvsr as P

    torch.manual_seed(3)
    raw = (torch.randn(1, 3, 8, 768, 1408, device="cuda") * 0.6).to(torch.bfloat16)
    sr = raw[0].transpose(0, 1)
    ref = (torch.rand(8, 3, 768, 1408, device="cuda") * 2 - 1).half()
    try:
        for fix in ("adain", "none"):
            for u8 in (True, False):
                P.set_fused_finish(False)
                want = P.finish_frames(sr, ref, fix, u8)
                P.set_fused_finish(True)
                got = P.finish_frames(sr, ref, fix, u8)
                assert torch.equal(got, want), (fix, u8, (got.float() - want.float()).abs().max())
    finally:
        P.set_fused_finish(True)
