"""Wan DiT: official layout, RoPE, streaming with a KV cache == whole-clip forward with the causal mask."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from streamvsr.models.flashvsr.attention import KVCache, SharedKVCache
from streamvsr.models.flashvsr.config import SIZES, AttentionConfig, FlashVSRConfig
from streamvsr.models.flashvsr.dit import (
    WanDiT,
    apply_rope,
    apply_rope_stacked,
    dit_config_from_state_dict,
    rope_angles,
    rope_split,
    sinusoidal_embedding,
)

TINY = SIZES["tiny"].dit


@pytest.fixture(scope="module")
def tiny() -> WanDiT:
    torch.manual_seed(0)
    return WanDiT(TINY).eval()


def test_official_layout_on_meta() -> None:
    cfg = SIZES["official-1.3b"].dit
    with torch.device("meta"):
        m = WanDiT(cfg)
    sd = m.state_dict()
    assert len(sd) == 825
    assert sum(t.numel() for t in sd.values()) == 1_418_996_800
    assert sd["patch_embedding.weight"].shape == (1536, 16, 1, 2, 2)
    assert sd["text_embedding.0.weight"].shape == (1536, 4096)
    assert sd["time_projection.1.weight"].shape == (9216, 1536)
    assert sd["blocks.29.modulation"].shape == (1, 6, 1536)
    assert sd["blocks.0.self_attn.norm_q.weight"].shape == (1536,)
    assert sd["blocks.0.norm3.bias"].shape == (1536,)
    assert sd["blocks.0.ffn.0.weight"].shape == (8960, 1536)
    assert sd["head.modulation"].shape == (1, 2, 1536)
    assert sd["head.head.weight"].shape == (64, 1536)
    assert sum(k.startswith("blocks.0.") for k in sd) == 27
    assert dit_config_from_state_dict(sd) == cfg
    assert cfg.head_dim == 128 and rope_split(128) == (44, 42, 42)


def test_config_roundtrip() -> None:
    for cfg in SIZES.values():
        assert FlashVSRConfig.from_dict(cfg.to_dict()) == cfg


def test_sinusoidal_cos_first() -> None:
    e = sinusoidal_embedding(256, torch.tensor([1000.0]))
    assert e.dtype == torch.float64 and e.shape == (1, 256)
    w3 = 10000 ** (-3 / 128)
    assert math.isclose(e[0, 3].item(), math.cos(1000 * w3), abs_tol=1e-12)
    assert math.isclose(e[0, 128 + 3].item(), math.sin(1000 * w3), abs_tol=1e-12)


def test_rope_angles_and_large_positions() -> None:
    d = 128
    pos = torch.tensor([5000, 5001])
    cos, sin = rope_angles(pos, 2, 3, d)
    assert cos.shape == (2 * 2 * 3, 64)
    # token (f=1, y=1, x=2): pair 5 temporal, pair 22+4 row, pair 43+7 column
    tok = 1 * 6 + 1 * 3 + 2
    ang_t = 5001 * 10000 ** (-2 * 5 / 44)
    ang_h = 1 * 10000 ** (-2 * 4 / 42)
    ang_w = 2 * 10000 ** (-2 * 7 / 42)
    assert math.isclose(cos[tok, 5].item(), math.cos(ang_t), abs_tol=1e-9)
    assert math.isclose(sin[tok, 22 + 4].item(), math.sin(ang_h), abs_tol=1e-12)
    assert math.isclose(cos[tok, 43 + 7].item(), math.cos(ang_w), abs_tol=1e-12)
    # relative property far beyond the official 1024-entry table: q.k depends on the offset only
    torch.manual_seed(0)
    q = torch.randn(1, 1, 1, d, dtype=torch.float64)
    k = torch.randn(1, 1, 1, d, dtype=torch.float64)

    def dot(pq: int, pk: int) -> float:
        cq, sq = rope_angles(torch.tensor([pq]), 1, 1, d)
        ck, sk = rope_angles(torch.tensor([pk]), 1, 1, d)
        return (apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum().item()

    assert math.isclose(dot(5003, 5000), dot(3, 0), rel_tol=1e-9, abs_tol=1e-9)
    assert not math.isclose(dot(5003, 5000), dot(5000, 5000), rel_tol=1e-3)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_apply_rope_equals_the_stacked_form_exactly(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 40, 3, 128, dtype=torch.float64).to(dtype)
    cos, sin = rope_angles(torch.arange(2) + 7, 4, 5, 128)
    for tables in ((cos, sin), (cos.float(), sin.float())):
        assert torch.equal(apply_rope(x, *tables), apply_rope_stacked(x, *tables))


def test_rope_in_float32_rounds_bf16_like_float64() -> None:
    """RoPE math in float32 on bf16 inputs: after the rounding to bf16 the result is float64's to one bf16 step,
    and equal for all but a tiny share of the elements (the positions are large, as deep in a long video)."""
    torch.manual_seed(0)
    d = 128
    x = torch.randn(1, 96, 4, d).to(torch.bfloat16)
    cos, sin = rope_angles(torch.arange(4000, 4006), 4, 4, d)
    ref = apply_rope(x, cos, sin)
    got = apply_rope(x, cos.float(), sin.float())
    assert got.dtype == torch.bfloat16
    diff = (got.float() - ref.float()).abs()
    step = ref.float().abs().clamp_min(2**-126) * 2**-7  # one bf16 step (8 significant bits)
    assert (diff <= step).all()
    assert (diff > 0).float().mean().item() < 2e-3


def test_dit_rope_fp32_only_for_16_bit_tokens(tiny: WanDiT) -> None:
    pos = torch.tensor([7, 8])
    tiny.rope_fp32_for_half = True
    try:
        assert tiny.rope(pos, 2, 2, torch.bfloat16)[0].dtype == torch.float32
        assert tiny.rope(pos, 2, 2, torch.float16)[1].dtype == torch.float32
        assert tiny.rope(pos, 2, 2, torch.float32)[0].dtype == torch.float64
    finally:
        tiny.rope_fp32_for_half = False
    assert tiny.rope(pos, 2, 2, torch.bfloat16)[0].dtype == torch.float64


def test_forward_chunk_beyond_1024(tiny: WanDiT) -> None:
    x = torch.randn(1, 16, 2, 16, 16)
    with torch.no_grad():
        v = tiny.forward_chunk(x, t_positions=torch.tensor([5000, 5001]), attn=AttentionConfig(backend="dense"))
    assert v.shape == x.shape and torch.isfinite(v).all()


def test_unpatchify_layout(tiny: WanDiT) -> None:
    f, h, w = 1, 2, 3
    c = TINY.out_channels
    y = torch.arange(f * h * w * 4 * c, dtype=torch.float32).view(1, f * h * w, 4 * c)
    out = tiny.unpatchify(y, (f, h, w))
    assert out.shape == (1, c, 1, 4, 6)
    # out[c, f, 2i+a, 2j+b] = y[token(f, i, j), (2a+b)*C + c]
    i, j, a, b, ch = 1, 2, 1, 0, 5
    assert out[0, ch, 0, 2 * i + a, 2 * j + b] == y[0, i * w + j, (2 * a + b) * c + ch]


def _stream(m: WanDiT, x: torch.Tensor, lq: torch.Tensor, attn: AttentionConfig, layout: str = "spare") -> torch.Tensor:
    T = x.shape[2]
    per = lq.shape[1] // T
    st = m.prepare()
    if layout == "shared":
        cache: KVCache | SharedKVCache = SharedKVCache(TINY.num_layers, attn.kv_windows)
    else:
        cache = KVCache(TINY.num_layers, attn.kv_windows, spare_slot=layout == "spare")
    outs = [m.forward_chunk(x[:, :, :6], lq[:, : 6 * per], 1000.0, torch.arange(6), cache, attn, st)]
    for s in range(6, T, 2):
        pos = torch.arange(s, s + 2)
        outs.append(m.forward_chunk(x[:, :, s : s + 2], lq[:, s * per : (s + 2) * per], 1000.0, pos, cache, attn, st))
        assert cache.windows[0] == min(attn.kv_windows, s // 2 + 1)
    return torch.cat(outs, 2)


@pytest.mark.parametrize(
    ("backend", "layout"),
    [
        ("dense", "spare"),
        ("dense", "lean"),
        ("full", "spare"),
        ("flex", "lean"),
        ("dense", "shared"),
        ("flex", "shared"),
    ],
)  # flex == dense: test_flashvsr_attention; flex with the lean cache attends over (ring, new) pieces
def test_streaming_equals_causal_reference(tiny: WanDiT, backend: str, layout: str) -> None:
    torch.manual_seed(1)
    T = 12  # call 0 (6 latents) + 3 steady calls: the cache evicts (and the shared ring wraps)
    x = torch.randn(1, 16, T, 16, 32)  # token grid 8 x 16: 2 blocks per window
    lq = torch.randn(1, T * 8 * 16, TINY.dim)
    attn = AttentionConfig(sparse_ratio=0.05, local_range=1, backend=backend)
    with torch.no_grad():
        ref = tiny(x, lq, attn=attn, causal=True)
        out = _stream(tiny, x, lq, attn, layout)
        full = tiny(x, lq)  # plain full attention, no window mask
    assert torch.allclose(out, ref, atol=1e-4), (out - ref).abs().max()
    assert (full - ref).abs().max() > 1e-3  # the sparse/causal structure matters in this case


@pytest.mark.parametrize("layout", ["shared", "lean"])
def test_flex_block_order_fewest_visible_first_streams_the_reference(tiny: WanDiT, layout: str) -> None:
    """The flex plans' order of a window's blocks (fewest visible key blocks first, set_flex_block_order) is a
    relabelling: streamed through the KV cache it gives the dense causal reference, which keeps row-major order."""
    from streamvsr.models.flashvsr import attention as A

    torch.manual_seed(5)
    T = 12
    x = torch.randn(1, 16, T, 16, 64)  # token grid 8 x 32: 1 x 4 blocks per window
    lq = torch.randn(1, T * 8 * 32, TINY.dim)
    attn = AttentionConfig(sparse_ratio=0.08, local_range=3, backend="flex")  # top-k 18 of 64 pairs
    plan = A.make_plan(8, 32, attn, torch.device("cpu"))
    assert plan.order.tolist() == [0, 3, 1, 2]  # edge columns see 2 key blocks, inner ones 3
    assert torch.equal(plan.local, A.local_block_mask(1, 4, 3)[plan.order][:, plan.order])
    with torch.no_grad():
        ref = tiny(x, lq, attn=dataclasses.replace(attn, backend="dense"), causal=True)
        out = _stream(tiny, x, lq, attn, layout)
        A.set_flex_block_order(False)
        try:
            assert A.make_plan(8, 32, attn, torch.device("cpu")).order is None
            row_major = _stream(tiny, x, lq, attn, layout)
        finally:
            A.set_flex_block_order(True)
    assert torch.allclose(out, ref, atol=1e-4), (out - ref).abs().max()
    assert torch.allclose(row_major, ref, atol=1e-4)


@pytest.mark.parametrize("backend", ["dense", "flex"])
def test_block_means_from_pre_give_the_same_selection(tiny: WanDiT, backend: str) -> None:
    """WanDiT.block_means_in_pre (the LCSA means from DiTBlock.pre) against the means taken in attend."""
    torch.manual_seed(7)
    x = torch.randn(1, 16, 12, 16, 64)
    lq = torch.randn(1, 12 * 8 * 32, TINY.dim)
    attn = AttentionConfig(sparse_ratio=0.08, local_range=3, backend=backend)  # top-k 18 of 64 pairs
    outs = []
    for on in (True, False):
        tiny.block_means_in_pre = on
        try:
            with torch.no_grad():
                outs.append(_stream(tiny, x, lq, attn, "shared"))
        finally:
            tiny.block_means_in_pre = True
    assert torch.allclose(outs[0], outs[1], atol=1e-5), (outs[0] - outs[1]).abs().max()


def test_sparse_differs_from_dense_regime(tiny: WanDiT) -> None:
    torch.manual_seed(2)
    x = torch.randn(1, 16, 6, 16, 32)
    with torch.no_grad():
        sparse = tiny.forward_chunk(x, attn=AttentionConfig(sparse_ratio=0.05, local_range=1, backend="dense"))
        nosparse = tiny.forward_chunk(x, attn=AttentionConfig(sparse=False, backend="dense"))
        full = tiny.forward_chunk(x, attn=AttentionConfig(backend="full"))
    assert torch.allclose(nosparse, full, atol=1e-5)
    assert (sparse - full).abs().max() > 1e-3


def test_segment_mask_isolates_segments(tiny: WanDiT) -> None:
    torch.manual_seed(3)
    x = torch.randn(1, 16, 3, 16, 16)
    seg = torch.tensor([0, 0, 1])  # a 2-latent clip and an image packed together
    pos = torch.tensor([0, 1, 0])
    with torch.no_grad():
        a = tiny(x, segment_ids=seg, t_positions=pos)
        x2 = x.clone()
        x2[:, :, :2] += 1.0
        b = tiny(x2, segment_ids=seg, t_positions=pos)
        alone = tiny(x[:, :, 2:])
    assert torch.allclose(a[:, :, 2], b[:, :, 2], atol=1e-5)
    assert torch.allclose(a[:, :, 2:], alone, atol=1e-5)
    assert (a[:, :, :2] - b[:, :, :2]).abs().max() > 1e-3


def test_gradient_checkpointing_same_grads() -> None:
    torch.manual_seed(4)
    m = WanDiT(TINY)
    x = torch.randn(1, 16, 2, 16, 16)
    t = torch.tensor([700.0])
    grads = []
    for ckpt in (False, True):
        m.zero_grad()
        m.gradient_checkpointing = ckpt
        m(x, t=t).square().mean().backward()
        grads.append(m.blocks[0].self_attn.q.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_text_context_path_and_prepare() -> None:
    cfg = dataclasses.replace(TINY, learned_context=False)
    torch.manual_seed(5)
    m = WanDiT(cfg).eval()
    assert not hasattr(m, "context") and "text_embedding.0.weight" in m.state_dict()
    ctx = torch.randn(1, cfg.text_len, cfg.text_dim)
    x = torch.randn(1, 16, 2, 16, 16)
    with torch.no_grad():
        st = m.prepare(ctx, 1000.0)
        assert st.t_mod.shape == (1, 6, cfg.dim) and len(st.cross_kv) == cfg.num_layers
        a = m.forward_chunk(x, state=st, attn=AttentionConfig(backend="dense"))
        b = m.forward_chunk(x, context=ctx, attn=AttentionConfig(backend="dense"))
        c = m.forward_chunk(x, context=ctx * 2, attn=AttentionConfig(backend="dense"))
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-4
    with pytest.raises(ValueError):
        m.prepare(None)


def test_block_order_run_equals_per_layer_reordering(tiny: WanDiT) -> None:
    """The LCSA path keeps the tokens in block order through all blocks; reordering per layer gives the same."""
    from streamvsr.models.flashvsr.attention import make_plan
    from streamvsr.models.flashvsr.dit import _AttnCtx, rope_angles

    torch.manual_seed(4)
    x = torch.randn(1, 16, 4, 16, 32)
    attn = AttentionConfig(sparse_ratio=0.05, local_range=1, backend="dense")
    with torch.no_grad():
        st = tiny.prepare()
        tokens, grid = tiny.patchify(x)
        f, h, w = grid
        cos, sin = rope_angles(torch.arange(f), h, w, TINY.head_dim, TINY.rope_theta)
        plan = make_plan(h, w, attn, x.device, patch_px=8 * TINY.patch[1])
        ctx = _AttnCtx(grid=grid, cos=cos, sin=sin, plan=plan, window=attn.window)  # natural order
        ref = tiny.unpatchify(tiny.head(tiny._run_blocks(tokens, st, ctx), st.t), grid)
        out = tiny.forward_chunk(x, attn=attn, state=st)
    assert torch.allclose(out, ref, atol=1e-6)


def test_window_fill_index_maps() -> None:
    """window_fill on a 5 x 12 token grid (padded to 8 x 16): the four maps and the reflection."""
    from streamvsr.models.flashvsr import attention as A

    grid, win = (2, 5, 12), (2, 8, 8)
    assert A.window_padded_grid(grid, win) == (2, 8, 16)
    order = torch.tensor([1, 0])  # a plan's block order (2 blocks per window)
    take, fill, real, back = A.window_fill(grid, win, order)
    n = 2 * 5 * 12
    assert sorted(take.tolist()) == list(range(n))  # every real token once
    assert torch.equal(take[back], torch.arange(n))
    assert torch.equal(fill[real], torch.arange(n))  # a real position holds its own token
    # natural padded positions -> their source (row, column): rows 5, 6, 7 mirror 3, 2, 1; columns 12.. mirror 10..
    nat = torch.arange(2 * 8 * 16).reshape(1, -1, 1)
    pos_b = A.to_block_order(nat, (2, 8, 16), win, order)[0, :, 0]  # natural index of each block-order position
    src = take[fill]  # natural real index held by each block-order position
    for p, s in zip(pos_b.tolist(), src.tolist(), strict=True):
        t, r, c = p // 128, (p % 128) // 16, p % 16
        rr = r if r < 5 else 8 - r
        cc = c if c < 12 else 22 - c
        assert s == (t * 5 + rr) * 12 + cc
    assert A.window_fill((2, 1, 3), win)[1].unique().numel() == 2 * 3  # a 1-row grid repeats its row


def test_window_fill_equals_the_mirrored_residual_stream(tiny: WanDiT) -> None:
    """A token grid that is not a multiple of the window (5 x 12): the DiT runs its per-token work on the real
    tokens and attention on whole windows. Reference: the padded grid with a residual stream of its own whose
    padding positions are mirrored from the real tokens before every block."""
    from streamvsr.models.flashvsr import attention as A
    from streamvsr.models.flashvsr.dit import _AttnCtx

    torch.manual_seed(11)
    T = 4
    x = torch.randn(1, 16, T, 10, 24)  # token grid 5 x 12
    lq = torch.randn(1, T * 5 * 12, TINY.dim)
    attn = AttentionConfig(sparse_ratio=0.3, local_range=1, backend="dense")
    with torch.no_grad():
        out = tiny(x, lq, attn=attn, causal=True)
        st = tiny.prepare()
        tokens, grid = tiny.patchify(x)
        tokens = tokens + lq
        padded = A.window_padded_grid(grid, attn.window)
        take, fill, real, back = A.window_fill(grid, attn.window)
        cos, sin = rope_angles(torch.arange(T), 8, 16, TINY.head_dim, TINY.rope_theta)
        ctx = _AttnCtx(
            grid=padded,
            cos=A.to_block_order(cos[None], padded, attn.window)[0],
            sin=A.to_block_order(sin[None], padded, attn.window)[0],
            plan=A.make_plan(8, 16, attn, x.device, patch_px=8 * TINY.patch[1]),
            window=attn.window,
            window_visible=A.causal_window_visibility(T // 2, attn.kv_windows, 3),
            block_order=True,
        )
        xf = tokens[:, take[fill]]  # (1, L, dim) padded, block order
        for i, block in enumerate(tiny.blocks):
            xf = block(xf[:, real][:, fill], st.t_mod, st.cross_kv[i], ctx, i)  # mirror, then the block
        ref = tiny.unpatchify(tiny.head(xf[:, real][:, back], st.t), grid)
        whole = tiny(x, lq)  # full attention: no windows, so no padding either
    assert out.shape == (1, 16, T, 10, 24)
    assert torch.allclose(out, ref, atol=2e-5), (out - ref).abs().max()
    assert (whole - out).abs().max() > 1e-3


@pytest.mark.parametrize("backend", ["dense", "flex"])
def test_window_fill_streams_the_causal_reference(tiny: WanDiT, backend: str) -> None:
    """Streaming a grid that is not a multiple of the window through the KV cache equals the whole clip."""
    from streamvsr.models.flashvsr import attention as A

    torch.manual_seed(12)
    T = 12
    x = torch.randn(1, 16, T, 10, 40)  # token grid 5 x 20 -> 8 x 24: 3 blocks per window
    lq = torch.randn(1, T * 5 * 20, TINY.dim)
    attn = AttentionConfig(sparse_ratio=0.2, local_range=1, backend=backend)
    tiny._fill_maps.clear()
    with torch.no_grad():
        ref = tiny(x, lq, attn=dataclasses.replace(attn, backend="dense"), causal=True)
        out = _stream(tiny, x, lq, attn, "shared")
    assert torch.allclose(out, ref, atol=1e-4), (out - ref).abs().max()
    # the maps are built once per grid and block order, not per chunk: the whole clip (dense), call 0 (6 latents)
    # and the steady calls (2)
    assert len(tiny._fill_maps) == 3
    flex_order = A.make_plan(8, 24, attn, torch.device("cpu")).order if backend == "flex" else None
    for (grid, win, order_key, _), maps in tiny._fill_maps.items():
        fresh = A.window_fill(grid, win, None if order_key is None else flex_order)
        assert all(torch.equal(m, n) for m, n in zip(maps, fresh, strict=True))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_window_fill_streams_the_reference_with_compiled_flex_on_cuda() -> None:
    """The window fill through the compiled FlexAttention kernel and the shared KV ring on CUDA, with the blocks'
    projection and output steps compiled (the pipeline's path), against the dense causal reference (float32)."""
    from streamvsr.pipeline.flashvsr import compile_dit

    torch.manual_seed(13)
    m = WanDiT(TINY).cuda().eval()
    T = 12
    x = torch.randn(1, 16, T, 10, 40, device="cuda")  # token grid 5 x 20 -> 8 x 24
    lq = torch.randn(1, T * 5 * 20, TINY.dim, device="cuda")
    attn = AttentionConfig(sparse_ratio=0.2, local_range=1, backend="flex")
    with torch.no_grad():
        ref = m(x, lq, attn=dataclasses.replace(attn, backend="dense"), causal=True)
        handle = compile_dit(m)
        try:
            st = m.prepare()
            cache = SharedKVCache(TINY.num_layers, attn.kv_windows)
            outs = [m.forward_chunk(x[:, :, :6], lq[:, :600], 1000.0, torch.arange(6), cache, attn, st)]
            for s in range(6, T, 2):
                pos = torch.arange(s, s + 2)
                lq_s = lq[:, s * 100 : (s + 2) * 100]
                outs.append(m.forward_chunk(x[:, :, s : s + 2], lq_s, 1000.0, pos, cache, attn, st))
        finally:
            handle.undo()
    out = torch.cat(outs, 2)
    assert torch.allclose(out, ref, atol=1e-3), (out - ref).abs().max()
