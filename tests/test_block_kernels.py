"""Our Triton kernels for LCSA (block lists, block-sparse attention) against the reference paths.

On the CPU they run under Triton's interpreter, in a subprocess (the interpreter is chosen when Triton is
imported); on CUDA (marked gpu) against FlexAttention at the official head size.
"""

from __future__ import annotations

import pytest
import torch
from triton_interp import run_interpreted

_CHECK = r"""
import math
import torch
from streamvsr.models.flashvsr import attention as A
from streamvsr.models.flashvsr import block_kernels as BK
from streamvsr.models.flashvsr.config import AttentionConfig

torch.manual_seed(0)

# block lists: the kernel against block_lists(probs > thr), windows masked, ties at the threshold, empty rows
B, H, nb = 1, 3, 4
vis = torch.tensor([[True, False, True], [True, True, True]])
probs = torch.softmax(torch.randn(B, H, 2 * nb, 3 * nb), -1)
probs[0, 0, 1, :nb] = probs[0, 0, 1, 0]  # a row of equal values
for v in (vis, None):
    for topk in (5, 0, 1000):
        flat, thr = A.topk_threshold(probs, nb, topk, v)
        num, idx = BK.compact_block_lists(flat.reshape(probs.shape), thr, nb)
        n2, i2 = A.block_lists((flat > thr).reshape(probs.shape))
        assert torch.equal(num, n2) and torch.equal(idx, i2), (topk, v)
        assert torch.equal(num, A.topk_select(probs, nb, topk, v).sum(-1, dtype=torch.int32))
try:
    BK.compact_block_lists(probs, thr[:, :, :1], nb)
    raise SystemExit("a threshold per window was not checked")
except ValueError:
    pass

# attention: against the dense reference, in both load forms, both launch orders, lse, strided views
blk, d = 16, 32
nq, nk = 3, 7
mask = torch.rand(2, H, nq, nk) < 0.5
mask[0, 1, 2] = False  # a query block without key blocks: zeros, lse -inf
q = torch.randn(2, nq * blk, H, d).transpose(1, 2)  # (B, H, L, d) views of (B, L, H, d), as the DiT hands them
k = torch.randn(2, nk * blk, H, d).transpose(1, 2)
v = torch.randn(2, nk * blk, H, d).transpose(1, 2)
ref = A.dense_block_attention(q, k, v, mask, blk)
scores = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(d)
tok = mask.repeat_interleave(blk, 2).repeat_interleave(blk, 3)
ref_lse = torch.logsumexp(scores.masked_fill(~tok, float("-inf")), -1)
num, idx = A.block_lists(mask)
for tma in (False, True):
    for order in (None, BK.longest_first(num)):
        out, lse = BK.block_sparse_attention(q, k, v, num, idx, blk, order, return_lse=True, use_tma=tma)
        assert (out - ref).abs().max() < 1e-5, (tma, order is not None, (out - ref).abs().max())
        assert torch.equal(out[0, 1, 2 * blk :], torch.zeros_like(out[0, 1, 2 * blk :]))
        assert torch.equal(torch.isinf(lse), torch.isinf(ref_lse))
        fin = torch.isfinite(ref_lse)
        assert (lse[fin] - ref_lse[fin]).abs().max() < 1e-5
out = BK.block_sparse_attention(q, k, v, num, idx, blk, use_tma=False, block_n=8)  # two key tiles per block
assert (out - ref).abs().max() < 1e-5
order = BK.longest_first(num)
assert sorted(order.tolist()) == list(range(num.numel()))
assert (num.reshape(-1)[order.long()].diff() <= 0).all()  # most key blocks first
# half precision (float16: the interpreter's bfloat16 dot is wrong in Triton 3.9; CUDA checks bfloat16 below)
out = BK.block_sparse_attention(q.half(), k.half(), v.half(), num, idx, blk)
assert out.dtype == torch.float16 and (out.float() - ref).abs().max() < 0.01

# the flex backend's call over one key tensor through both kernels equals the dense backend
BK.available = lambda x: True  # the interpreter runs them on the CPU
cfg = AttentionConfig(window=(1, 2, 2), local_range=3)
plan_d = A.make_plan(4, 8, cfg, torch.device("cpu"))
plan_f = A.SparsePlan(**{**plan_d.__dict__, "backend": "flex", "biases": {}})
L = plan_d.nb * plan_d.block
q, k, v = (torch.randn(1, 2, n, 8) for n in (L, 3 * L, 3 * L))
vis = torch.tensor([[True, True, True]])
want = A.lcsa_attention(q, k, v, plan_d, vis)
A.set_block_kernels(True, "triton", {"use_tma": False})
got = A.lcsa_attention(q, k, v, plan_f, vis)
assert (got - want).abs().max() < 1e-5, (got - want).abs().max()
print("ok")
"""


def test_block_kernels_against_the_references_under_the_interpreter() -> None:
    run_interpreted(_CHECK)


def test_block_lists_kernel_is_the_default_and_needs_cuda() -> None:
    from streamvsr.models.flashvsr import attention as A
    from streamvsr.models.flashvsr import block_kernels as BK

    assert A.get_block_kernels() == (True, "auto", {})  # the lists kernel on (CUDA); FlashAttention 4 or flex
    assert not BK.available(torch.zeros(1))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_block_kernels_match_flexattention_on_cuda() -> None:
    from streamvsr.models.flashvsr import attention as A
    from streamvsr.models.flashvsr import block_kernels as BK
    from streamvsr.models.flashvsr.config import AttentionConfig

    torch.manual_seed(7)
    dev = torch.device("cuda")
    plan = A.make_plan(48, 88, AttentionConfig(), dev)  # 768x1408: 66 blocks per window
    L = plan.nb * plan.block
    q = torch.randn(1, L, 12, 128, device=dev, dtype=torch.bfloat16).transpose(1, 2)
    k, v = (torch.randn(1, 12, 4 * L, 128, device=dev, dtype=torch.bfloat16) for _ in range(2))
    vis = torch.ones(1, 4, dtype=torch.bool)
    qm, km = A.block_means(q, plan.block), A.block_means(k, plan.block)
    mask = A.select_blocks(qm, km, plan, vis)
    before = A.get_block_kernels()
    try:
        A.set_block_kernels(True)
        num, idx = A.select_block_lists(qm, km, plan, vis)
        n2, i2 = A.block_lists(mask)
        assert torch.equal(num, n2) and torch.equal(idx, i2)
        ref = A.flex_block_attention(q, k, v, mask, plan.block).float()
        for tma, bn in ((True, None), (False, None), (True, 64)):
            order = BK.longest_first(num)
            out = BK.block_sparse_attention(q, k, v, num, idx, plan.block, order, use_tma=tma, block_n=bn).float()
            snr = 10 * torch.log10(ref.pow(2).sum() / (out - ref).pow(2).sum())
            assert snr > 45, (tma, bn, snr)
        assert BK.last_resources()["registers"] > 0
        A.set_block_kernels(True, "triton")
        out = A.lcsa_attention(q, k, v, plan, vis, k_means=km, q_means=qm).float()
        assert 10 * torch.log10(ref.pow(2).sum() / (out - ref).pow(2).sum()) > 45
    finally:
        A.set_block_kernels(*before)
