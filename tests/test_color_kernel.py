"""The fused output step (``ops.color_kernel``) against the eager ``finish_frames``: the same values, bit for bit.

On the CPU under Triton's interpreter (float32 and float16: the interpreter truncates instead of rounding when it
converts to bfloat16), on CUDA (marked gpu) in bfloat16 as the pipeline runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

_CHECK = r"""
import torch
from streamvsr.ops import color_kernel as CK
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
print("ok")
"""


def test_fused_finish_equals_the_eager_steps_under_the_interpreter() -> None:
    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    r = subprocess.run([sys.executable, "-c", _CHECK], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]


def test_fused_finish_is_on_by_default_and_needs_cuda() -> None:
    from streamvsr.ops import color_kernel as CK
    from streamvsr.pipeline import flashvsr as P

    assert P.get_fused_finish()
    assert not CK.available(torch.zeros(1))


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
