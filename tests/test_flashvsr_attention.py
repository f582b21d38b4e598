"""LCSA (spec §1.10): layout, local mask, top-k semantics, kernels (dense vs flex) and the KV cache."""

from __future__ import annotations

import pytest
import torch
from triton_interp import run_interpreted

from streamvsr.models.flashvsr.attention import (
    KVCache,
    SharedKVCache,
    block_means,
    causal_window_visibility,
    dense_block_attention,
    flex_block_attention,
    kth_largest,
    local_block_mask,
    make_plan,
    select_blocks,
    sparse_topk,
    topk_select,
    window_partition,
    window_reverse,
)
from streamvsr.models.flashvsr.config import AttentionConfig


def test_window_partition_order_and_roundtrip() -> None:
    f, h, w = 4, 16, 8
    # token value = its (f, y, x) coordinates
    ff, yy, xx = torch.meshgrid(torch.arange(f), torch.arange(h), torch.arange(w), indexing="ij")
    coords = torch.stack([ff, yy, xx], -1).reshape(1, f * h * w, 3)
    blk = window_partition(coords, (f, h, w), (2, 8, 8))
    # block 0 = window (t0, r0, c0): tokens ordered (dt, dy, dx)
    assert blk[0, 0].tolist() == [0, 0, 0]
    assert blk[0, 1].tolist() == [0, 0, 1]
    assert blk[0, 8].tolist() == [0, 1, 0]
    assert blk[0, 64].tolist() == [1, 0, 0]
    # block 1 = row window 1 of temporal window 0; block 2 = temporal window 1
    assert blk[0, 128].tolist() == [0, 8, 0]
    assert blk[0, 256].tolist() == [2, 0, 0]
    assert torch.equal(window_reverse(blk, (f, h, w), (2, 8, 8)), coords)


def test_local_mask_boundary_truncated() -> None:
    m = local_block_mask(1, 5, 3)
    allowed = [torch.nonzero(m[i]).flatten().tolist() for i in range(5)]
    assert allowed == [[0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4]]
    # even R: window r - R//2 ... r - R//2 + R - 1 (one more on the low side)
    m4 = local_block_mask(1, 6, 4)
    assert torch.nonzero(m4[3]).flatten().tolist() == [1, 2, 3, 4]
    # 2-D: rows and columns combine
    m2 = local_block_mask(3, 3, 1)
    assert torch.equal(m2, torch.eye(9, dtype=torch.bool))


def test_topk_formula_matches_spec_table() -> None:
    assert sparse_topk(60, 768, 1280, 2.0) == 7199
    assert sparse_topk(66, 768, 1408, 2.0) == 7919
    assert sparse_topk(120, 1024, 1920, 2.0) == 14399
    assert sparse_topk(240, 1536, 2560, 2.0) == 28799
    assert make_plan(48, 88, AttentionConfig(), torch.device("cpu")).topk == 7919


def test_topk_strict_greater_and_ties() -> None:
    # one head, one query window of nb=2 blocks, one key window (Nk = 2): 4 entries
    probs = torch.tensor([[[[0.5, 0.3], [0.3, 0.2]]]])
    # topk=1 -> threshold = 2nd largest = 0.3; strictly greater keeps only 0.5
    keep = topk_select(probs, nb=2, topk=1)
    assert keep[0, 0].tolist() == [[True, False], [False, False]]
    # topk=2 -> threshold = 3rd largest = 0.3 (tie): still only 0.5 kept
    assert topk_select(probs, nb=2, topk=2)[0, 0].sum() == 1
    # topk=3 -> threshold 0.2: three kept, query block 1 keeps one
    assert topk_select(probs, nb=2, topk=3)[0, 0].tolist() == [[True, True], [True, False]]
    # dense regime: k clamps to Nb*Nk - 1, threshold = minimum, the minimum is still dropped
    assert topk_select(probs, nb=2, topk=100)[0, 0].sum() == 3


def test_topk_is_per_query_window_and_respects_visibility() -> None:
    # two query windows (nb=1) x two key windows; window 0 may not see key window 1
    probs = torch.tensor([[[[0.9, 0.1], [0.6, 0.4]]]])
    vis = torch.tensor([[True, False], [True, True]])
    keep = topk_select(probs, nb=1, topk=1, window_visible=vis)
    # window 0: one visible entry -> k = min(1, 0) = 0 -> threshold = its own value -> nothing kept
    assert keep[0, 0, 0].tolist() == [False, False]
    # window 1: k = 1, threshold = 0.4 -> keep 0.6 only
    assert keep[0, 0, 1].tolist() == [True, False]


def test_kth_largest_equals_the_sorted_topk_ties_included() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 50, (2, 3, 4, 300), generator=g).float()  # many ties
    for k in (1, 2, 37, 150, 299, 300):
        ref = torch.topk(x, k, dim=-1, sorted=True).values[..., k - 1 :]
        assert torch.equal(kth_largest(x, k), ref)


@pytest.mark.parametrize(
    "vis",
    [
        [[True, True, False], [False, True, True]],  # the same number of visible windows (the steady state)
        [[True, False, False], [True, True, True]],  # a different k per query window (the first call)
    ],
)
def test_topk_select_equals_the_sorted_path(vis: list[list[bool]]) -> None:
    # the reference is the sorted top-k threshold, taken per query window, that kth_largest replaced
    g = torch.Generator().manual_seed(1)
    nb, nqw, nkw = 4, 2, 3
    probs = torch.randint(0, 20, (1, 2, nqw * nb, nkw * nb), generator=g).float() / 20  # ties
    visible = torch.tensor(vis)
    for topk in (0, 3, 11, 31, 100):
        keep = topk_select(probs, nb, topk, window_visible=visible)
        flat = probs.reshape(1, 2, nqw, nb, nkw, nb).masked_fill(~visible[None, None, :, None, :, None], -1.0)
        flat = flat.reshape(1, 2, nqw, nb * nkw * nb)
        for i, n in enumerate(visible.sum(-1).tolist()):
            k = max(0, min(topk, n * nb * nb - 1))
            thr = torch.topk(flat[:, :, i], k + 1, dim=-1, sorted=True).values[..., k : k + 1]
            assert torch.equal(keep.reshape(flat.shape)[:, :, i], flat[:, :, i] > thr)


_RADIX_CHECK = """
import torch
from streamvsr.models.flashvsr.radix_select import kth_largest_rows
for k in (1, 37, 700, 900):
    torch.manual_seed(k)
    x = torch.softmax(torch.randn(2, 3, 1000), -1)  # probabilities, as the selection's
    x[0, 0, :100] = -1.0  # invisible key windows: never counted
    x[0, 1, 10:60] = x[0, 1, 5]  # ties
    x[1, 2, ::3] = 0.0  # the local mask's zeros count
    ref = torch.topk(x, k, dim=-1).values.amin(-1, keepdim=True)
    for segment in (None, 256, 512, "auto"):  # one program per row; rows split over programs; by the length
        got = kth_largest_rows(x, k, block=256 if segment != "auto" else 4096, segment=segment)
        assert got.shape == (2, 3, 1), got.shape
        assert torch.equal(got, ref), (k, segment)
print("ok")
"""


def test_radix_select_equals_the_top_k_ties_and_masks_included() -> None:
    """The Triton radix select gives the bits of the top-k's minimum; run by Triton's interpreter on the CPU, in a
    process of its own (the interpreter must be chosen before Triton is imported)."""
    run_interpreted(_RADIX_CHECK)


def test_radix_select_auto_form_by_row_length() -> None:
    from streamvsr.models.flashvsr.radix_select import auto_segment

    assert auto_segment(17424) is None and auto_segment(32768) is None  # 768x1408: one program per row
    assert auto_segment(72900) == 4096  # 1080p: rows split


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_topk_select_with_the_radix_select_is_the_same_on_cuda() -> None:
    from streamvsr.models.flashvsr import attention as A

    torch.manual_seed(6)
    probs = torch.softmax(torch.randn(1, 12, 2 * 66, 4 * 66, device="cuda"), -1)
    vis = torch.tensor([[True, True, False, True], [True, True, True, True]])
    before = A.get_radix_select()
    try:
        A.set_radix_select(False)  # the reference: torch.topk
        refs = [topk_select(probs, 66, 7919, v) for v in (vis, None)]  # masked windows; one window of all keys
        for segment in (None, 4096, "auto"):
            A.set_radix_select(True, segment)
            got = [topk_select(probs, 66, 7919, v) for v in (vis, None)]
            assert all(torch.equal(g, r) for g, r in zip(got, refs, strict=True)), segment
    finally:
        A.set_radix_select(*before)
    assert before == (True, "auto")  # the default


def test_select_blocks_empty_query_block_and_local() -> None:
    torch.manual_seed(0)
    attn = AttentionConfig(local_range=1, sparse_ratio=0.02)
    plan = make_plan(8, 24, attn, torch.device("cpu"))  # 1 x 3 blocks, topk small
    assert plan.nb == 3 and plan.topk == int(9 * 0.02 * 768 * 1280 / (128 * 384)) - 1
    qm = torch.randn(1, 2, 3, 16)
    km = torch.randn(1, 2, 6, 16)
    keep = select_blocks(qm, km, plan)
    # R = 1: a query block may only use the key block at the same grid position in each window
    allowed = local_block_mask(1, 3, 1).repeat(1, 2)
    assert not (keep & ~allowed).any()
    assert (keep.sum(-1) == 0).any()  # with this budget some query blocks select nothing


def _random_case(empty_row: bool = True) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(1)
    B, H, nq, nk, d, blk = 1, 2, 3, 5, 16, 128
    q = torch.randn(B, H, nq * blk, d)
    k = torch.randn(B, H, nk * blk, d)
    v = torch.randn(B, H, nk * blk, d)
    bm = torch.rand(B, H, nq, nk) > 0.5
    bm[..., 0, 0] = True
    if empty_row:
        bm[0, 1, 2] = False
    return q, k, v, bm


def test_dense_kernel_matches_masked_softmax_and_zero_rows() -> None:
    q, k, v, bm = _random_case()
    out = dense_block_attention(q, k, v, bm)
    assert torch.isfinite(out).all()
    assert out[0, 1, 256:384].abs().max() == 0  # empty query block -> zeros
    # explicit reference for one non-empty row block
    tok = bm.repeat_interleave(128, 2).repeat_interleave(128, 3)
    s = (q @ k.transpose(-1, -2)) / 4.0
    s = s.masked_fill(~tok, float("-inf"))
    ref = torch.softmax(s, -1).nan_to_num(0.0) @ v
    assert torch.allclose(out, ref, atol=1e-5)


def test_dense_kernel_backward_has_no_nan() -> None:
    q, k, v, bm = _random_case()
    q.requires_grad_(True)
    dense_block_attention(q, k, v, bm).sum().backward()
    assert torch.isfinite(q.grad).all()
    assert q.grad[0, 1, 256:384].abs().max() == 0


def test_flex_equals_dense() -> None:
    pytest.importorskip("torch.nn.attention.flex_attention")
    q, k, v, bm = _random_case()
    dense = dense_block_attention(q, k, v, bm)
    flex = flex_block_attention(q, k, v, bm, compiled=False)  # eager reference path on CPU
    assert torch.isfinite(flex).all()
    assert flex[0, 1, 256:384].abs().max() == 0
    assert torch.allclose(flex, dense, atol=1e-5)


def test_flex_graphs_stay_under_dynamos_recompile_limit(monkeypatch) -> None:  # noqa: ANN001
    """Past the limit Dynamo runs FlexAttention eagerly, whose eager path ignores the block lists (it attends
    everywhere without a mask_mod): every new shape or layout of the compiled call raises the limit with it."""
    import torch._dynamo
    from torch.nn.attention.flex_attention import BlockMask, flex_attention

    from streamvsr.models.flashvsr import attention as A

    q, k, v, bm = _random_case()
    num, idx = A.block_lists(bm)
    z = torch.zeros_like(num)
    eager = flex_attention(q, k, v, block_mask=BlockMask.from_kv_blocks(z, torch.zeros_like(idx), num, idx, 128))
    assert not torch.allclose(eager, dense_block_attention(q, k, v, bm), atol=1e-3)  # why the limit matters

    monkeypatch.setattr(A, "_FLEX_GRAPHS", set())
    monkeypatch.setattr(A, "_flex_fn", lambda compiled: lambda q, k, v, **kw: q)  # no kernel needed here
    cfg = torch._dynamo.config
    saved, cfg.recompile_limit = cfg.recompile_limit, 8
    try:
        for n in range(1, 21):
            x = torch.randn(1, 1, 128 * n, 16)
            flex_block_attention(x, x, x, torch.ones(1, 1, n, n, dtype=torch.bool), compiled=True)
            assert cfg.recompile_limit >= len(A._FLEX_GRAPHS) + 8 == n + 8
    finally:
        cfg.recompile_limit = max(saved, cfg.recompile_limit)


def test_causal_window_visibility() -> None:
    vis = causal_window_visibility(6, kv_windows=3, first_windows=3)
    rows = [torch.nonzero(vis[i]).flatten().tolist() for i in range(6)]
    assert rows == [[0, 1, 2], [0, 1, 2], [0, 1, 2], [0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5]]


@pytest.mark.parametrize("spare", [True, False])
def test_kv_cache_is_bounded_and_resets(spare: bool) -> None:
    cache = KVCache(num_layers=2, max_windows=3, spare_slot=spare)
    per = 128

    def win(val: float, n: int = 1) -> torch.Tensor:  # n windows, window i holds val + i
        return (val + torch.arange(n, dtype=torch.float32)).repeat_interleave(per).view(1, 1, n * per, 1)

    k = win(0.0, 3)
    kk, vv, mm, n = cache.append(0, k, k, block_means(k, 128), 3)  # call 0: 3 windows
    assert n == 3 and torch.equal(kk, k) and cache.get(1) is None
    cache.evict(0)
    assert cache.windows[0] == 3
    ring = cache._k[0]
    for step in range(5):
        new = win(1000.0 + step)
        kk, vv, mm, n = cache.append(0, new, new, block_means(new, 128), 1)
        assert n == 4 and kk.shape[2] == 4 * per  # 3 cached + 1 new
        # the key set is the last 4 windows (in slot order)
        assert sorted(mm[0, 0, :, 0].tolist()) == sorted(([0.0, 1.0, 2.0] + [1000.0 + i for i in range(step + 1)])[-4:])
        cache.evict(0)
        assert cache.windows[0] == 3
        ck, _, cm = cache.get(0)  # age order, newest last
        assert ck.shape[2] == 3 * per and cm[0, 0, -1, 0] == 1000.0 + step
        assert cache._k[0] is ring  # no reallocation: bounded memory, written in place
    slots = 4 if spare else 3
    assert cache.nbytes() == slots * (2 * per * 4 + 4)
    cache.reset()
    assert cache.get(0) is None and cache.nbytes() == 0


@pytest.mark.parametrize(
    "calls",
    [
        [3] + [1] * 12,  # the pipeline: call 0 with 3 windows, then one window a call (the ring wraps)
        [1, 1, 1, 1, 2, 1, 5, 1, 1],  # filling one at a time, then several windows beyond a full ring
        [2, 2, 1, 3, 1, 1],  # filling past the ring's size in one call
    ],
)
def test_shared_kv_cache_keeps_each_layers_last_windows(calls: list[int]) -> None:
    """Every layer attends over exactly its last W cached windows plus the new ones, whatever the slot
    layout, and keeps the newest W; the ring never grows and steady calls attend over one view."""
    L, W, per = 4, 3, 128
    cache = SharedKVCache(num_layers=L, max_windows=W)
    ref = KVCache(num_layers=L, max_windows=W, spare_slot=False)
    history: list[list[float]] = [[] for _ in range(L)]
    wid = 0.0
    ring = None

    def ids(x: torch.Tensor) -> list[float]:  # one id per window (window j holds its id in every row)
        return x[0, 0, ::per, 0].tolist()

    for n in calls:
        for layer in range(L):
            vals = torch.arange(wid, wid + n) + 1000.0 * layer
            k = vals.repeat_interleave(per).view(1, 1, n * per, 1).expand(1, 2, n * per, 2).contiguous()
            m = block_means(k, 128)
            kk, vv, mm, cnt = cache.append(layer, k, -k, m, n, pieces=True)
            rk, _, rm, rcnt = ref.append(layer, k, -k, m, n, pieces=False)
            full = kk if isinstance(kk, torch.Tensor) else torch.cat(kk, dim=2)
            fullv = vv if isinstance(vv, torch.Tensor) else torch.cat(vv, dim=2)
            expect = history[layer][-W:] + vals.tolist()
            assert cnt == rcnt == len(expect)
            assert sorted(ids(full)) == sorted(ids(rk)) == sorted(expect)
            assert torch.equal(fullv, -full) and sorted(mm[0, 0, :, 0].tolist()) == sorted(rm[0, 0, :, 0].tolist())
            assert ids(full) == mm[0, 0, :, 0].tolist()  # means in the same (slot) order as the keys
            if n == 1 and len(history[layer]) >= W and isinstance(kk, torch.Tensor):
                assert kk.shape[2] == (W + 1) * per
            cache.evict(layer)
            ref.evict(layer)
            history[layer] += vals.tolist()
            got = cache.get(layer)
            assert got is not None and ids(got[0]) == history[layer][-W:]  # age order, oldest first
        wid += n
        ring = cache._k if ring is None else ring
        assert cache._k is ring and cache.windows == [min(W, len(history[0]))] * L
    assert cache.nbytes() == (L * W + 1) * (2 * 2 * per * 2 + 2 * 2) * 4
    cache.reset()
    assert cache.get(0) is None and cache.nbytes() == 0 and cache.windows == [0] * L


def test_shared_kv_cache_steady_calls_are_views_but_where_the_ring_wraps() -> None:
    L, W, per = 5, 3, 128
    cache = SharedKVCache(num_layers=L, max_windows=W)
    copies = 0
    for call in range(2 * (L * W + 1)):  # two turns of the ring
        n = 3 if call == 0 else 1
        for layer in range(L):
            k = torch.randn(1, 1, n * per, 4)
            kk, _, _, _ = cache.append(layer, k, k, block_means(k, 128), n)
            if call > 0:
                copies += kk.untyped_storage().data_ptr() != cache._k.untyped_storage().data_ptr()
            cache.evict(layer)
    # in a steady call at most the one layer whose W + 1 slots straddle the ring's end gets a copy
    steady = 2 * (L * W + 1) - 1
    assert steady // 2 < copies <= steady
    k = torch.randn(1, 1, 2 * per, 4)  # another frame size mid-stream
    with pytest.raises(ValueError, match="window size changed"):
        cache.append(0, k, k, block_means(k, 128), 1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_flex_compiled_equals_dense_on_cuda() -> None:
    q, k, v, bm = (t.cuda() for t in _random_case())
    q, k, v = (t.to(torch.bfloat16) for t in (q, k, v))
    dense = dense_block_attention(q, k, v, bm)
    flex = flex_block_attention(q, k, v, bm, compiled=True)
    assert torch.isfinite(flex).all()
    assert flex[0, 1, 256:384].abs().max() == 0  # empty query block -> zeros
    assert (flex.float() - dense.float()).abs().max() < 2e-2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(
    ("options", "mode"),
    [
        ({"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 8, "num_stages": 2}, None),
        ({"USE_TMA": True}, None),
        (None, "max-autotune-no-cudagraphs"),
    ],
)
def test_flex_kernel_options_equal_dense_on_cuda(options: dict | None, mode: str | None) -> None:
    from streamvsr.models.flashvsr import attention as attn_mod

    q, k, v, bm = (t.cuda() for t in _random_case())
    q, k, v = (t.to(torch.bfloat16) for t in (q, k, v))
    dense = dense_block_attention(q, k, v, bm)
    attn_mod.set_flex_options(options, mode)
    try:
        flex = flex_block_attention(q, k, v, bm, compiled=True)
    finally:
        attn_mod.set_flex_options()
    assert flex[0, 1, 256:384].abs().max() == 0
    assert (flex.float() - dense.float()).abs().max() < 2e-2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_hopper_options_at_the_official_head_size_equal_dense_on_cuda() -> None:
    """The options the pipeline sets on Hopper, at head size 128 (their 128 x 128 tiles, 3 stages)."""
    from streamvsr.models.flashvsr import attention as attn_mod
    from streamvsr.pipeline.flashvsr import hopper_flex_options

    if torch.cuda.get_device_capability()[0] != 9:
        pytest.skip("the options are chosen for Hopper only (their shared memory)")
    torch.manual_seed(2)
    q, k, v = (torch.randn(1, 2, n * 128, 128, device="cuda", dtype=torch.bfloat16) for n in (3, 5, 5))
    bm = torch.rand(1, 2, 3, 5, device="cuda") > 0.5
    bm[..., 0] = True
    dense = dense_block_attention(q, k, v, bm)
    attn_mod.set_flex_options(hopper_flex_options(128))
    try:
        flex = flex_block_attention(q, k, v, bm, compiled=True)
    finally:
        attn_mod.set_flex_options()
    assert (flex.float() - dense.float()).abs().max() < 2e-2


def test_hopper_flex_options_by_head_size() -> None:
    from streamvsr.pipeline.flashvsr import hopper_flex_options

    assert hopper_flex_options(128) == {
        "USE_TMA": True,
        "BLOCK_M": 128,
        "BLOCK_N": 128,
        "num_warps": 8,
        "num_stages": 3,
    }
    assert hopper_flex_options(64) == {"USE_TMA": True}  # the tiles were measured for the official heads only


def test_upscalers_replace_their_own_flex_options_but_not_a_callers(monkeypatch) -> None:  # noqa: ANN001
    from streamvsr.models.flashvsr import attention as attn_mod
    from streamvsr.pipeline import flashvsr as pipe

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))  # a Hopper GPU
    monkeypatch.setattr(pipe, "_AUTO_FLEX", None)
    proj, dit = torch.nn.Module(), torch.nn.Linear(2, 2)  # a float32 stand-in: no FFN to fuse
    try:
        attn_mod.set_flex_options()
        pipe._cuda_fast_paths(dit, proj, torch.device("cuda"), 128)  # an official-size model
        assert attn_mod.get_flex_options() == (pipe.hopper_flex_options(128), None) and proj.time_fold
        pipe._cuda_fast_paths(dit, proj, torch.device("cuda"), 64)  # then a model with heads of 64, same process
        assert attn_mod.get_flex_options() == ({"USE_TMA": True}, None)
        attn_mod.set_flex_options({"BLOCK_M": 64})  # the caller's own choice stays
        pipe._cuda_fast_paths(dit, proj, torch.device("cuda"), 128)
        assert attn_mod.get_flex_options() == ({"BLOCK_M": 64}, None)
    finally:
        attn_mod.set_flex_options()


def test_flex_options_leave_the_eager_path_alone() -> None:
    from streamvsr.models.flashvsr import attention as attn_mod

    pytest.importorskip("torch.nn.attention.flex_attention")
    q, k, v, bm = _random_case()
    ref = flex_block_attention(q, k, v, bm, compiled=False)
    attn_mod.set_flex_options({"BLOCK_M": 64}, "max-autotune-no-cudagraphs")
    try:
        assert attn_mod._FLEX_OPTIONS == {"BLOCK_M": 64} and attn_mod._FLEX_COMPILED is None
        assert torch.equal(flex_block_attention(q, k, v, bm, compiled=False), ref)
    finally:
        attn_mod.set_flex_options()
    assert attn_mod._FLEX_OPTIONS is None and attn_mod._FLEX_MODE is None


def test_merge_partial_attention_equals_one_pass() -> None:
    from streamvsr.models.flashvsr.attention import merge_partial_attention

    torch.manual_seed(3)
    q, k, v = torch.randn(2, 3, 40, 8), torch.randn(2, 3, 50, 8), torch.randn(2, 3, 50, 8)
    mask = torch.rand(2, 3, 40, 50) > 0.4
    mask[0, 1, 5] = False  # a row with no key at all -> zeros
    mask[1, 2, 7, :30] = False  # a row whose keys all lie in the second piece

    def attend(keys: torch.Tensor, vals: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = ((q @ keys.transpose(-1, -2)) / 8**0.5).masked_fill(~m, float("-inf"))
        return torch.nan_to_num(torch.softmax(s, -1)) @ vals, s.logsumexp(-1)

    ref, _ = attend(k, v, mask)
    o1, l1 = attend(k[:, :, :30], v[:, :, :30], mask[..., :30])
    o2, l2 = attend(k[:, :, 30:], v[:, :, 30:], mask[..., 30:])
    assert torch.isinf(l1[1, 2, 7]) and torch.isinf(l1[0, 1, 5])
    out = merge_partial_attention([o1, o2], [l1, l2])
    assert torch.isfinite(out).all()
    assert out[0, 1, 5].abs().max() == 0
    assert torch.allclose(out, ref, atol=1e-5)


def test_flex_pieces_equal_one_concatenated_call() -> None:
    from streamvsr.models.flashvsr.attention import flex_block_attention_pieces

    pytest.importorskip("torch.nn.attention.flex_attention")
    q, k, v, bm = _random_case()
    ref = dense_block_attention(q, k, v, bm)
    cut = 128 * 2  # the first two key blocks form the first piece
    out = flex_block_attention_pieces(q, (k[:, :, :cut], k[:, :, cut:]), (v[:, :, :cut], v[:, :, cut:]), bm, 128, False)
    assert out[0, 1, 256:384].abs().max() == 0  # the empty query block stays zero
    assert torch.allclose(out, ref, atol=1e-5)
    with pytest.raises(ValueError, match="block mask"):
        flex_block_attention_pieces(q, (k[:, :, :cut],), (v[:, :, :cut],), bm, 128, False)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_flex_pieces_compiled_equal_dense_on_cuda() -> None:
    from streamvsr.models.flashvsr.attention import flex_block_attention_pieces

    q, k, v, bm = (t.cuda() for t in _random_case())
    q, k, v = (t.to(torch.bfloat16) for t in (q, k, v))
    dense = dense_block_attention(q, k, v, bm)
    cut = 128 * 2
    out = flex_block_attention_pieces(q, (k[:, :, :cut], k[:, :, cut:]), (v[:, :, :cut], v[:, :, cut:]), bm, 128, True)
    assert out[0, 1, 256:384].abs().max() == 0
    assert (out.float() - dense.float()).abs().max() < 2e-2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_flex_backward_runs_with_tuned_options_set_on_cuda() -> None:
    from streamvsr.models.flashvsr import attention as attn_mod

    q, k, v, bm = (t.cuda() for t in _random_case())
    q, k, v = (t.to(torch.bfloat16) for t in (q, k, v))
    q.requires_grad_(True)
    attn_mod.set_flex_options({"USE_TMA": True})
    try:
        out = flex_block_attention(q, k, v, bm, compiled=True)  # needs gradients: PyTorch's own options
        out.float().sum().backward()
    finally:
        attn_mod.set_flex_options()
    assert torch.isfinite(q.grad).all() and q.grad.abs().sum() > 0
