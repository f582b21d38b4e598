"""FlashAttention 4's Hopper kernel as LCSA's attention (models.flashvsr.fa4): the adapter on the CPU with a
stand-in for the package, the kernel itself against FlexAttention and the dense reference on a Hopper GPU."""

from __future__ import annotations

import collections
import warnings

import pytest
import torch

from streamvsr.models.flashvsr import attention as A
from streamvsr.models.flashvsr import fa4
from streamvsr.models.flashvsr.config import AttentionConfig

_Lists = collections.namedtuple(
    "_Lists", "mask_block_cnt mask_block_idx full_block_cnt full_block_idx block_size", defaults=(None,)
)


def _mask(num: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The (B, H, Nq, Nk) block mask of block lists."""
    keep = torch.arange(idx.shape[-1]) < num[..., None]
    return torch.zeros(idx.shape, dtype=torch.bool).scatter(-1, idx.long(), keep)


def _lists(B: int, H: int, nq: int, nk: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(B, H, nq, nk, generator=g) < 0.5
    mask[0, 0, nq - 1] = False  # a query block without key blocks: zeros
    return A.block_lists(mask)


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> list:
    """fa4's package replaced by a dense stand-in that records its calls (the kernel's calling convention)."""
    calls: list = []

    def flash_attn_func(q, k, v, block_sparse_tensors):  # noqa: ANN001, ANN202 - the package's signature
        lists = block_sparse_tensors
        calls.append((q, k, v, lists))
        mask = _mask(lists.full_block_cnt, lists.full_block_idx)
        assert not lists.mask_block_cnt.any()  # every listed block is a full block
        out = A.dense_block_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), mask, 128)
        return out.transpose(1, 2).contiguous(), None  # (B, L, H, d) like the kernel

    monkeypatch.setattr(fa4, "_INTERFACE", (flash_attn_func, _Lists))
    monkeypatch.setattr(fa4, "_FAILED", set())
    monkeypatch.setattr(fa4, "_SEEN", set())
    return calls


def test_adapter_hands_the_kernel_its_layout_and_full_block_lists(stand_in: list) -> None:
    torch.manual_seed(0)
    B, H, nq, nk, d = 1, 2, 2, 4, 128
    q = torch.randn(B, nq * 128, H, d).transpose(1, 2)  # the DiT's (B, L, H, d) seen as (B, H, L, d)
    k, v = (torch.randn(B, H, nk * 128, d) for _ in range(2))
    num, idx = _lists(B, H, nq, nk, seed=1)
    out = fa4.block_sparse_attention(q, k, v, num, idx)
    ref = A.dense_block_attention(q, k, v, _mask(num, idx), 128)
    assert out.shape == q.shape and (out - ref).abs().max() < 1e-5
    assert out[0, 0, 128:256].abs().max() == 0  # the empty query block (the last one)
    qk, kk, _, lists = stand_in[0]
    assert qk.is_contiguous() and qk.shape == (B, nq * 128, H, d)  # no copy of the DiT's layout
    assert kk.shape == (B, nk * 128, H, d) and lists.block_size == (128, 128)
    assert torch.equal(lists.full_block_cnt, num) and lists.full_block_idx is idx
    assert out.transpose(1, 2).is_contiguous()  # the caller's transpose back is a view
    with pytest.raises(ValueError, match="do not match"):
        fa4.block_sparse_attention(q, k, v, num[:, :, :1], idx)


def test_a_failed_first_call_falls_back_and_marks_the_device(stand_in: list, monkeypatch) -> None:  # noqa: ANN001
    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("no CUDA 13 driver")

    monkeypatch.setattr(fa4, "_INTERFACE", (broken, _Lists))
    q = torch.randn(1, 2, 128, 128)
    num, idx = _lists(1, 2, 1, 1, seed=2)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert fa4.block_sparse_attention(q, q, q, num, idx) is None
    assert "FlexAttention runs instead" in str(seen[0].message) and q.device in fa4._FAILED
    fa4._FAILED.clear()
    fa4._SEEN.add(q.device)  # after a successful call a failure is an error, not a fallback
    with pytest.raises(RuntimeError, match="no CUDA 13 driver"):
        fa4.block_sparse_attention(q, q, q, num, idx)


def test_eligibility_and_the_kernel_choice(stand_in: list, monkeypatch) -> None:  # noqa: ANN001
    q = torch.randn(1, 2, 256, 128, dtype=torch.bfloat16)
    assert not fa4.eligible(q, q, 128)  # not CUDA
    before = A.get_block_kernels()
    assert before[1] == "auto"
    with pytest.raises(ValueError, match="not one of"):
        A.set_block_kernels(True, "cudnn")
    monkeypatch.setattr(fa4, "_INTERFACE", None)
    with pytest.raises(ValueError, match="needs flash-attn-4"):
        A.set_block_kernels(True, "fa4")
    assert A.get_block_kernels() == before


def test_lcsa_routes_eligible_calls_to_the_kernel(stand_in: list, monkeypatch) -> None:  # noqa: ANN001
    from streamvsr.models.flashvsr import block_kernels as BK

    monkeypatch.setattr(fa4, "eligible", lambda q, k, block: True)
    monkeypatch.setattr(BK, "available", lambda x: True)  # the CUDA branch of the flex backend
    monkeypatch.setattr(A, "_BLOCK_KERNELS", (False, "auto", {}))  # torch's lists (no Triton launch)
    cfg = AttentionConfig(window=(1, 16, 8), local_range=3)
    plan_d = A.make_plan(32, 16, cfg, torch.device("cpu"))  # 4 blocks of 128 tokens per window
    plan_f = A.SparsePlan(**{**plan_d.__dict__, "backend": "flex", "biases": {}})
    L = plan_d.nb * plan_d.block
    torch.manual_seed(3)
    q, k, v = (torch.randn(1, 2, n, 128) for n in (L, 3 * L, 3 * L))
    vis = torch.tensor([[True, True, True]])
    want = A.lcsa_attention(q, k, v, plan_d, vis)
    got = A.lcsa_attention(q, k, v, plan_f, vis)
    assert len(stand_in) == 1 and (got - want).abs().max() < 1e-5


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.get_device_capability()[0] != 9 or not fa4.installed(),
    reason="needs a Hopper GPU and flash-attn-4",
)
def test_fa4_matches_flexattention_on_hopper() -> None:
    torch.manual_seed(7)
    dev = torch.device("cuda")
    plan = A.make_plan(48, 88, AttentionConfig(), dev)  # 768x1408: 66 blocks per window
    L = plan.nb * plan.block
    q = torch.randn(1, L, 12, 128, device=dev, dtype=torch.bfloat16).transpose(1, 2)
    ring = torch.randn(2, 1, 12, 6 * L, 128, device=dev, dtype=torch.bfloat16)
    k, v = ring[0, :, :, L : 5 * L], ring[1, :, :, L : 5 * L]  # views into a ring, like the KV cache's
    vis = torch.ones(1, 4, dtype=torch.bool)
    qm, km = A.block_means(q, plan.block), A.block_means(k, plan.block)
    num, idx = A.select_block_lists(qm, km, plan, vis)
    num[0, 3, 5] = 0  # a query block without key blocks
    with torch.inference_mode():
        ref = A.flex_block_attention(q, k, v, None, plan.block, lists=(num, idx)).float()
        out = fa4.block_sparse_attention(q, k, v, num, idx)
        assert out is not None and out.dtype == q.dtype and out.transpose(1, 2).is_contiguous()
        snr = 10 * torch.log10(ref.pow(2).sum() / (out.float() - ref).pow(2).sum())
        assert snr > 45, snr
        assert out[0, 3, 5 * 128 : 6 * 128].abs().max() == 0
        # the dense reference on one head
        m = _mask(num[:, :1].cpu(), idx[:, :1].cpu()).to(dev)
        dense = A.dense_block_attention(q[:, :1].float(), k[:, :1].float(), v[:, :1].float(), m, plan.block)
        assert 10 * torch.log10(dense.pow(2).sum() / (out[:, :1].float() - dense).pow(2).sum()) > 40
        before = A.get_block_kernels()
        try:
            A.set_block_kernels(True, "fa4")
            got = A.lcsa_attention(q, k, v, plan, vis, k_means=km, q_means=qm).float()
            A.set_block_kernels(True, "flex")
            want = A.lcsa_attention(q, k, v, plan, vis, k_means=km, q_means=qm).float()
        finally:
            A.set_block_kernels(*before)
        assert 10 * torch.log10(want.pow(2).sum() / (got - want).pow(2).sum()) > 45
