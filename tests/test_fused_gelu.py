"""The DiT FFN's linear + tanh GELU as one op: the CPU reference, the DiT swap and its undo, compiled; CUDA epilogue."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from streamvsr.models.flashvsr.config import SIZES
from streamvsr.models.flashvsr.dit import WanDiT
from streamvsr.models.flashvsr.fused import LinearGELU, fuse_ffn_gelu, linear_gelu_tanh, unfuse_ffn_gelu

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_linear_gelu_matches_linear_then_tanh_gelu() -> None:
    g = torch.Generator().manual_seed(0)
    lin = nn.Linear(24, 40)
    x = torch.randn(2, 7, 24, generator=g)
    ref = nn.functional.gelu(lin(x), approximate="tanh")
    got = LinearGELU(lin)(x)
    assert got.shape == (2, 7, 40)
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    # the exact-erf GELU is measurably different here: the test would see a wrong approximation
    assert (nn.functional.gelu(lin(x)) - ref).abs().max() > 1e-5


def test_fuse_ffn_gelu_swaps_every_block_and_undo_restores_it() -> None:
    torch.manual_seed(0)
    dit = WanDiT(SIZES["tiny"].dit).eval()
    keys = set(dit.state_dict())
    x = torch.randn(1, 5, SIZES["tiny"].dit.dim)
    ref = [b.ffn(x) for b in dit.blocks]
    assert fuse_ffn_gelu(dit) == len(dit.blocks)
    assert all(isinstance(b.ffn[0], LinearGELU) and isinstance(b.ffn[1], nn.Identity) for b in dit.blocks)
    assert set(dit.state_dict()) == keys  # the same names: checkpoints load either way
    for b, r in zip(dit.blocks, ref, strict=True):
        torch.testing.assert_close(b.ffn(x), r, rtol=0, atol=0)
    compiled = torch.compile(dit.blocks[0].ffn, backend="eager", fullgraph=True)  # the op traces with its fake
    torch.testing.assert_close(compiled(x), ref[0], rtol=0, atol=0)
    assert fuse_ffn_gelu(dit) == 0  # already fused
    assert unfuse_ffn_gelu(dit) == len(dit.blocks)
    assert all(type(b.ffn[0]) is nn.Linear and isinstance(b.ffn[1], nn.GELU) for b in dit.blocks)
    for b, r in zip(dit.blocks, ref, strict=True):
        torch.testing.assert_close(b.ffn(x), r, rtol=0, atol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_epilogue_matches_the_reference() -> None:
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(4096, 1536, device="cuda", generator=g).to(torch.bfloat16)
    w = (torch.randn(8960, 1536, device="cuda", generator=g) / 40).to(torch.bfloat16)
    b = torch.randn(8960, device="cuda", generator=g).to(torch.bfloat16)
    got = linear_gelu_tanh(x, w, b).float()
    ref = nn.functional.gelu(nn.functional.linear(x.float(), w.float(), b.float()), approximate="tanh")
    err = (got - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt()
    assert err < 5e-3, err  # bf16 output rounding (2^-9 relative) and bf16 GEMM accumulation order


def test_fp8_conversion_splits_the_fused_ffn_first() -> None:
    """The CUDA upscaler fuses ffn.0 + GELU in bf16; --fp8 converts ffn.0 afterwards: it must still find it."""
    from streamvsr.models.flashvsr.fp8 import DEFAULT_INCLUDE, FP8Linear, convert_dit_linears_to_fp8

    dit = WanDiT(SIZES["tiny"].dit).eval()
    fuse_ffn_gelu(dit)
    n = convert_dit_linears_to_fp8(dit, DEFAULT_INCLUDE, fuse_gelu=True)
    assert n == len(DEFAULT_INCLUDE) * len(dit.blocks)
    assert all(isinstance(b.ffn[0], FP8Linear) and b.ffn[2].pre_gelu for b in dit.blocks)


def test_linear_gelu_keeps_gradients() -> None:
    lin = nn.Linear(8, 16)
    x = torch.randn(3, 8, requires_grad=True)
    LinearGELU(lin)(x).sum().backward()
    assert x.grad is not None and lin.weight.grad is not None
