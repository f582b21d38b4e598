"""LCSA attention kernels alone, at the official size: time per layer call, TFLOP/s, error against float32.

One steady-state self-attention call of one DiT layer (official: 12 heads of 128), as the lean KV cache hands
it over: the queries of one temporal window against the ring of ``kv_windows`` cached windows plus the new
window, in two key pieces. The block mask comes from :func:`select_blocks` on random block means, so every
query window keeps exactly the top-k pairs the model keeps at that size (the work is the model's; which pairs
are kept differs). Variants:

- ``bf16``: the model's path (:func:`flex_block_attention_pieces`, bf16 q, k, v).
- ``bf16-mod``: bf16 operands through the score_mod path of ``fp8`` (the cost of the score_mod alone).
- ``fp8-qk``: FP8 q and k, bf16 v (if FlexAttention accepts mixed operands).
- ``fp8``: q, k and v in float8 e4m3 with one scale per head and tensor (amax / 448); the scales enter
  through a score_mod (q and k) and the output (v); FlexAttention then runs its kernel on FP8 operands.

- ``cudnn``: cuDNN frontend's block-sparse attention (``nvidia-cudnn-frontend``, CuTe DSL; SM90) over the
  same two pieces, merged the same way; ``cudnn-one`` and ``flex-one``: one call over the concatenated keys.
- ``deq``: the model's bf16 path on the dequantised FP8 inputs (the quantisation error alone).
- ``flex-presorted`` / ``flex-ascending``: ``flex-one`` on each head's query blocks already sorted by their count of
  selected key blocks, most / fewest first (the kernel's thread blocks start in launch order).
- ``tri``: our Triton block-sparse kernel (:mod:`~streamvsr.models.flashvsr.block_kernels`) over the concatenated
  keys, programs in (head, query block) order; ``tri-lpt``: started longest first (all heads' query blocks sorted
  by their key-block count in every call, the sort timed with it); ``-ptr``: plain pointer loads instead of TMA
  descriptors. A suffix ``:wNsM`` sets num_warps N and num_stages M (default ``:w8s3``). Like ``flex-one`` they
  build the block lists from the mask inside the timed call.
- ``lists-torch`` / ``lists-tri``: building the block lists alone from the selection's scores and thresholds:
  ``block_lists(scores > thr)`` against the Triton kernel ``compact_block_lists`` (no TFLOP/s).

Each variant runs with each ``--flex-variants`` kernel option set. Error: SNR in dB of the output against the
model's bf16 path on the same inputs.

The random block means give a selection unlike the model's, so the kernels' times here do not rank them as the
model does: in the model (768x1408, Nsight Compute, eleventh session of 2026-11-27) FlexAttention's kernel took 1.60
and ``tri`` 1.70 ms per call, where this bench gives about 1.97 (2.12 with the lists) and 1.77 (1.92).
``--layout captured`` takes the inputs from the model instead: the official-size upscaler with random weights
streams a smooth random clip and one steady self-attention call of ``--layer`` is kept (q, k, v and the block lists
the model selected; :func:`capture_model_call`). Its variants: ``flex-lists`` (FlexAttention on those lists, the
model's path), the ``tri`` ones and ``fa4``: FlashAttention 4's CuTe DSL forward (``flash-attn-4``, its SM90 kernel:
FlashAttention 3's warp-specialised design with the softmax overlapped with the GEMMs) on the same lists as full
blocks; ``fa4-nors`` / ``fa4-noov``: without P in registers for the PV GEMM / without the intra-warpgroup overlap.
The lists are built before the timed calls.

    python bench/attention_kernels.py --sizes 768x1408,1080x1920 --variants bf16,fp8 --json attn.json
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from pathlib import Path

import torch

from streamvsr.models.flashvsr import attention as A
from streamvsr.models.flashvsr.config import AttentionConfig
from streamvsr.models.flashvsr.fp8 import FP8_DTYPE, FP8_MAX

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flashvsr import _parse_sizes, parse_flex_variants  # noqa: E402
from gpu_timing import timed  # noqa: E402


def token_grid(out_h: int, out_w: int, window: tuple[int, int, int], patch_px: int = 16) -> tuple[int, int]:
    """Token rows and columns of an output size, padded up to whole windows (as the pipeline pads)."""
    wh, ww = window[1], window[2]
    h = math.ceil(out_h / (patch_px * wh)) * wh
    w = math.ceil(out_w / (patch_px * ww)) * ww
    return h, w


def quantize_per_head(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, H, L, d) -> float8 e4m3 and (H,) float32 scales with x ~= q * scale[h]."""
    amax = x.abs().amax(dim=(0, 2, 3)).float().clamp(min=1e-12)  # (H,)
    scale = amax / FP8_MAX
    return (x.float() / scale.view(1, -1, 1, 1)).to(FP8_DTYPE), scale


def _scaled_flex(q, k, v, s, block_mask, scale, kernel_options):  # noqa: ANN001, ANN202 - compiled below
    """FlexAttention with the scores multiplied by s[h] (one float32 per head) through a score_mod."""
    from torch.nn.attention.flex_attention import flex_attention

    def score_mod(score, b, h, q_idx, kv_idx):  # noqa: ANN001, ANN202 - FlexAttention signature
        return score * s[h]

    kw = {"kernel_options": kernel_options} if kernel_options else {}
    return flex_attention(q, k, v, score_mod=score_mod, block_mask=block_mask, scale=scale, return_lse=True, **kw)


_SCALED_FLEX = None


def fp8_pieces(q8, qs, k8s, ks, v8s, vs, bm, block, head_dim):  # noqa: ANN001, ANN201 - bench helper
    """FlexAttention over FP8 pieces: scores scaled per head by qs * ks / sqrt(d), output by vs."""
    from torch.nn.attention.flex_attention import BlockMask

    global _SCALED_FLEX
    if _SCALED_FLEX is None:
        _SCALED_FLEX = torch.compile(_scaled_flex, dynamic=False)
    outs, lses, start = [], [], 0
    opts = A.get_flex_options()[0]
    for k8, kscale, v8, vscale in zip(k8s, ks, v8s, vs, strict=True):
        nk = k8.shape[2] // block
        m = bm[..., start : start + nk].contiguous()
        start += nk
        num = m.sum(-1, dtype=torch.int32)
        idx = torch.argsort((~m).to(torch.int8), dim=-1, stable=True).to(torch.int32)
        z_num, z_idx = torch.zeros_like(num), torch.zeros_like(idx)
        lens = (q8.shape[2], k8.shape[2])
        bmask = BlockMask.from_kv_blocks(z_num, z_idx, num, idx, BLOCK_SIZE=block, seq_lengths=lens)
        s = (qs * kscale).float()  # (H,)
        o, lse = _SCALED_FLEX(q8, k8, v8, s, bmask, 1.0 / math.sqrt(head_dim), opts)
        outs.append(o.float() * vscale.view(1, -1, 1, 1))
        lses.append(lse)
    return A.merge_partial_attention(outs, lses)


def dequant_pieces(q8, qs, k8s, ks, v8s, vs, bm, block):  # noqa: ANN001, ANN201 - bench helper
    """The model's bf16 path on the dequantised FP8 inputs: separates the kernel's error from quantisation."""

    def deq(x, s):  # noqa: ANN001, ANN202
        return (x.float() * s.view(1, -1, 1, 1)).to(torch.bfloat16)

    kk = tuple(deq(x, s) for x, s in zip(k8s, ks, strict=True))
    vv = tuple(deq(x, s) for x, s in zip(v8s, vs, strict=True))
    return A.flex_block_attention_pieces(deq(q8, qs), kk, vv, bm, block)


def _cudnn_bsa_forward():  # noqa: ANN202 - the optional kernel's entry point, or None
    """cuDNN frontend's block-sparse attention forward (``nvidia-cudnn-frontend``, CuTe DSL kernels), if installed."""
    try:
        from cudnn.block_sparse_attention import block_sparse_attention_forward
    except Exception:  # noqa: BLE001 - not installed, or its CUDA libraries are missing: the kernel is optional
        return None
    return block_sparse_attention_forward


def cudnn_bsa_available(device: torch.device | str) -> bool:
    """Whether :func:`cudnn_block_attention` can run on ``device``: a Hopper (SM90) GPU and the
    ``nvidia-cudnn-frontend`` package with its CuTe DSL dependencies importable."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    if torch.cuda.get_device_capability(device)[0] != 9:
        return False
    return _cudnn_bsa_forward() is not None


def cudnn_block_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    block_mask: torch.Tensor,
    block: int = 128,
    return_lse: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The contract of :func:`flex_block_attention` on cuDNN frontend's block-sparse attention kernel
    (SM90, bf16/fp16, head size 64/96/128, inference only): per query block the list of its key blocks.
    Query blocks without a key block give zeros and a log-sum-exp of -inf (natural log)."""
    fwd = _cudnn_bsa_forward()
    if fwd is None:
        raise RuntimeError("cuDNN block-sparse attention needs the nvidia-cudnn-frontend package")
    num, idx = A.block_lists(block_mask)
    res = fwd(q, k, v, idx, q2k_block_nums=num, sparse_block_size=block, layout="bhsd")
    out, lse = res["o_tensor"], res["lse_tensor"]
    return (out, lse) if return_lse else out


def cudnn_pieces(q, ks, vs, bm, block):  # noqa: ANN001, ANN201 - bench helper
    """cuDNN frontend's block-sparse kernel over the pieces, merged like the flex path."""
    outs, lses, start = [], [], 0
    for k, v in zip(ks, vs, strict=True):
        nk = k.shape[2] // block
        o, lse = cudnn_block_attention(q, k, v, bm[..., start : start + nk].contiguous(), block, return_lse=True)
        outs.append(o)
        lses.append(lse)
        start += nk
    return A.merge_partial_attention(outs, lses)


def sort_query_blocks(
    q: torch.Tensor, bm: torch.Tensor, block: int, descending: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q (B, H, L, d) and bm (B, H, Nq, Nk) with each head's query blocks in order of their key-block
    count; also the order (B, H, Nq) int64 (sorted position -> original query block)."""
    B, H, L, d = q.shape
    nq = L // block
    order = torch.argsort(bm.sum(-1, dtype=torch.int32), dim=-1, descending=descending, stable=True)
    qs = torch.gather(q.reshape(B, H, nq, block * d), 2, order[..., None].expand(B, H, nq, block * d))
    bms = torch.gather(bm, 2, order[..., None].expand(B, H, nq, bm.shape[-1]))
    return qs.reshape(B, H, L, d), bms, order


def triton_call(variant: str, q, k, v, bm, block: int, lists=None):  # noqa: ANN001, ANN201 - bench helper
    """The call of a ``tri[-lpt][-ptr][:wNsM]`` variant (see the module docstring): the block lists built from the
    mask ``bm`` inside the call, or ``lists`` (num, idx) given."""
    from streamvsr.models.flashvsr import block_kernels as BK

    name, _, opts = variant.partition(":")
    warps, stages = (int(x) for x in opts[1:].split("s")) if opts else (8, 3)
    parts = name.split("-")[1:]

    def call():  # noqa: ANN202
        num, idx = A.block_lists(bm) if lists is None else lists
        order = BK.longest_first(num) if "lpt" in parts else None
        return BK.block_sparse_attention(
            q, k, v, num, idx, block, order, use_tma="ptr" not in parts, num_warps=warps, num_stages=stages
        )

    return call


def fa4_call(variant: str, q, k, v, num, idx, block: int):  # noqa: ANN001, ANN201 - bench helper
    """The call of a ``fa4[-nors][-noov]`` variant: FlashAttention 4's forward on the block lists (num, idx) as full
    blocks. q, k, v (B, H, L, d) go in as their (B, L, H, d) transposes (no copy where the strides allow)."""
    from flash_attn.cute.block_sparsity import BlockSparseTensorsTorch
    from flash_attn.cute.interface import _flash_attn_fwd

    parts = variant.split("-")[1:]
    lists = BlockSparseTensorsTorch(
        mask_block_cnt=torch.zeros_like(num),
        mask_block_idx=idx,
        full_block_cnt=num,
        full_block_idx=idx,
        block_size=(block, block),
    )
    opts = {}
    if "nors" in parts:
        opts["mma_pv_is_rs"] = False
    if "noov" in parts:
        opts["intra_wg_overlap"] = False
    q4, k4, v4 = (x.transpose(1, 2) for x in (q, k, v))

    def call():  # noqa: ANN202
        return _flash_attn_fwd(q4, k4, v4, block_sparse_tensors=lists, **opts)[0].transpose(1, 2)

    return call


def _unknown(variant: str):  # noqa: ANN202
    def call():  # noqa: ANN202
        raise KeyError(f"variant {variant!r} does not run with this --layout")

    return call


def measure(row: dict, call, score, flop: float | None, iters: int) -> dict:  # noqa: ANN001
    """Fill ``row`` with ``score(call())`` (a dict), the time per call and the TFLOP/s (``flop`` per call; None: no
    TFLOP/s), or with the error a variant the kernel refuses gives; print it as a JSON line."""
    try:
        row.update(score(call()))
        ms = timed(call, iters, warmup=3) * 1e3
        tflops = None if flop is None else flop / (ms * 1e-3) / 1e12
        row.update(ms=ms, tflops=tflops, ms_per_chunk_30_layers=ms * 30)
    except Exception as e:  # noqa: BLE001 - a variant the kernel refuses is a result, not a crash
        row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
    print(json.dumps(row), flush=True)
    return row


def snr_db(x: torch.Tensor, ref: torch.Tensor) -> float:
    err = (x.float() - ref.float()).pow(2).sum()
    return float(10 * torch.log10(ref.float().pow(2).sum() / err.clamp_min(1e-30)))


def capture_model_call(
    out_hw: tuple[int, int],
    device: torch.device,
    size: str = "official-1.3b",
    layer: int = 15,
    frames: int = 33,
    dtype: torch.dtype | None = None,
) -> dict:
    """Stream a smooth random clip of ``frames`` LR frames through the FlashVSR upscaler (random weights of ``size``)
    and keep the inputs of DiT layer ``layer``'s last steady self-attention call (keys of the cached windows and the
    new one): q, k, v (B, H, L, d), the block lists the model selected (num, idx; ``select_block_lists`` on the
    call's block means) and the plan's block size."""
    from flashvsr import _psnr_clip, _render

    from streamvsr.models.flashvsr import dit as dit_mod
    from streamvsr.models.flashvsr.config import SIZES
    from streamvsr.pipeline.flashvsr import FlashVSRUpscaler

    cfg = SIZES[size]
    context = None if cfg.dit.learned_context else torch.randn(1, cfg.dit.text_len, cfg.dit.text_dim, device=device)
    up = FlashVSRUpscaler.from_config(cfg, device=device, dtype=dtype, context=context)
    seen: dict = {}
    calls = [0]
    orig = dit_mod.lcsa_attention

    def spy(q, k, v, plan, window_visible=None, k_means=None, q_means=None):  # noqa: ANN001, ANN202
        i = calls[0]
        calls[0] += 1
        kk, vv = (torch.cat(k, 2), torch.cat(v, 2)) if isinstance(k, tuple) else (k, v)
        if i % cfg.dit.num_layers == layer and kk.shape[2] > q.shape[2]:
            qm = q_means if q_means is not None else A.block_means(q, plan.block)
            km = k_means if k_means is not None else A.block_means(kk, plan.block)
            num, idx = A.select_block_lists(qm, km, plan, window_visible)
            seen.update(q=q.clone(), k=kk.clone(), v=vv.clone(), num=num, idx=idx, block=plan.block)
        return orig(q, k, v, plan, window_visible, k_means, q_means)

    dit_mod.lcsa_attention = spy
    try:
        with torch.inference_mode():
            _render(up, _psnr_clip(out_hw, frames), up.cfg.attention.backend, device)
    finally:
        dit_mod.lcsa_attention = orig
    if not seen:
        raise RuntimeError(f"no steady self-attention call of layer {layer} in {frames} frames")
    return seen


def run_captured(out_h: int, out_w: int, a: argparse.Namespace, dev: torch.device) -> list[dict]:
    """The variants on one captured steady call of the model (``--layout captured``)."""
    c = capture_model_call((out_h, out_w), dev, layer=a.layer, dtype=torch.bfloat16)
    q, k, v, num, idx, block = c["q"], c["k"], c["v"], c["num"], c["idx"], c["block"]
    H, d = q.shape[1], q.shape[-1]
    pairs = int(num.sum())
    flop = pairs * 4 * block * block * d
    print(f"{out_h}x{out_w}, layer {a.layer}: key blocks per query block min {int(num.min())} mean "
          f"{num.float().mean():.1f} max {int(num.max())} (of {idx.shape[-1]})", flush=True)  # fmt: skip
    calls = {"flex-lists": lambda: A.flex_block_attention(q, k, v, None, block, lists=(num, idx))}
    for var in a.variants.split(","):
        if var.startswith("tri"):
            calls[var] = triton_call(var, q, k, v, None, block, lists=(num, idx))
        elif var.startswith("fa4"):
            try:
                calls[var] = fa4_call(var, q, k, v, num, idx, block)
            except ImportError as e:  # the optional package is missing: a row with the error
                calls[var] = _unknown(f"{var} ({e})")
    rows = []
    for fname, fopts, fmode in a.flex_variants:
        A.set_flex_options(fopts, fmode)
        ref = calls["flex-lists"]().float()
        for var in a.variants.split(","):
            row = {"size": f"{out_h}x{out_w}", "variant": var, "flex": fname, "pairs_per_head": pairs / H}
            call = calls.get(var, _unknown(var))
            rows.append(measure(row, call, lambda out, ref=ref: {"snr_db": snr_db(out, ref)}, flop, a.iters))
    A.set_flex_options(None, None)
    return rows


def run_size(out_h: int, out_w: int, a: argparse.Namespace, dev: torch.device) -> list[dict]:
    """All variants at one output size (the same inputs and block mask for all)."""
    cfg = AttentionConfig()
    h, w = token_grid(out_h, out_w, cfg.window)
    plan = A.make_plan(h, w, cfg, dev)
    g = torch.Generator(device=dev).manual_seed(a.seed)
    nq, H, d = plan.nb * plan.block, a.heads, a.head_dim
    q, kr, kn, vr, vn = (
        torch.randn(1, H, n, d, device=dev, generator=g).to(torch.bfloat16)
        for n in (nq, cfg.kv_windows * nq, nq, cfg.kv_windows * nq, nq)
    )
    if a.layout == "model":  # q as the DiT's (B, L, H, d) view; keys and values as views into a shared ring
        q = q.transpose(1, 2).contiguous().transpose(1, 2)
        slots = 30 * cfg.kv_windows + 1
        ring_k = torch.empty(1, H, slots * nq, d, device=dev, dtype=torch.bfloat16)
        ring_v = torch.empty_like(ring_k)
        at = 17 * cfg.kv_windows * nq  # some layer's slots in the middle of the ring
        ring_k[:, :, at : at + cfg.kv_windows * nq] = kr
        ring_k[:, :, at + cfg.kv_windows * nq : at + (cfg.kv_windows + 1) * nq] = kn
        ring_v[:, :, at : at + cfg.kv_windows * nq] = vr
        ring_v[:, :, at + cfg.kv_windows * nq : at + (cfg.kv_windows + 1) * nq] = vn
        n_all = (cfg.kv_windows + 1) * nq
        kr, kn = ring_k[:, :, at : at + cfg.kv_windows * nq], ring_k[:, :, at + cfg.kv_windows * nq : at + n_all]
        vr, vn = ring_v[:, :, at : at + cfg.kv_windows * nq], ring_v[:, :, at + cfg.kv_windows * nq : at + n_all]
    vis = A.causal_window_visibility(cfg.kv_windows + 1, cfg.kv_windows, first_windows=0)[-1:].to(dev)
    k_all = torch.cat([kr, kn], dim=2) if a.layout != "model" else ring_k[:, :, at : at + n_all]
    bm = A.select_blocks(A.block_means(q, plan.block), A.block_means(k_all, plan.block), plan, vis)
    pairs = int(bm.sum())
    counts = bm.sum(-1).float()
    print(
        f"{out_h}x{out_w}: key blocks per query block min {counts.min():.0f} mean {counts.mean():.1f} "
        f"max {counts.max():.0f} (of {bm.shape[-1]})",
        flush=True,
    )
    v_all = torch.cat([vr, vn], dim=2) if a.layout != "model" else ring_v[:, :, at : at + n_all]
    q_desc, bm_desc, order_desc = sort_query_blocks(q, bm, plan.block, descending=True)
    q_asc, bm_asc, _ = sort_query_blocks(q, bm, plan.block, descending=False)
    flop = pairs * 4 * plan.block * plan.block * d
    ref = A.flex_block_attention_pieces(q, (kr, kn), (vr, vn), bm, plan.block).float()  # the model's bf16 path
    q8, qs = quantize_per_head(q)
    k8r, ksr = quantize_per_head(kr)
    k8n, ksn = quantize_per_head(kn)
    v8r, vsr = quantize_per_head(vr)
    v8n, vsn = quantize_per_head(vn)
    one = torch.ones(H, device=dev)
    calls = {
        "bf16": functools.partial(A.flex_block_attention_pieces, q, (kr, kn), (vr, vn), bm, plan.block),
        "fp8": functools.partial(fp8_pieces, q8, qs, (k8r, k8n), (ksr, ksn), (v8r, v8n), (vsr, vsn), bm, plan.block, d),
        # the score_mod path on bf16 operands (its cost alone), and FP8 q, k with bf16 v (if accepted)
        "bf16-mod": functools.partial(
            fp8_pieces, q, one, (kr, kn), (one, one), (vr, vn), (one, one), bm, plan.block, d
        ),
        "cudnn": functools.partial(cudnn_pieces, q, (kr, kn), (vr, vn), bm, plan.block),
        "cudnn-one": functools.partial(cudnn_block_attention, q, k_all, torch.cat([vr, vn], dim=2), bm, plan.block),
        "flex-one": functools.partial(A.flex_block_attention, q, k_all, v_all, bm, plan.block),
        "flex-presorted": functools.partial(A.flex_block_attention, q_desc, k_all, v_all, bm_desc, plan.block),
        "flex-ascending": functools.partial(A.flex_block_attention, q_asc, k_all, v_all, bm_asc, plan.block),
        "deq": functools.partial(
            dequant_pieces, q8, qs, (k8r, k8n), (ksr, ksn), (v8r, v8n), (vsr, vsn), bm, plan.block
        ),
        "fp8-qk": functools.partial(
            fp8_pieces, q8, qs, (k8r, k8n), (ksr, ksn), (vr, vn), (one, one), bm, plan.block, d
        ),
    }
    from streamvsr.models.flashvsr import block_kernels as BK

    probs = A._selection_probs(A.block_means(q, plan.block), A.block_means(k_all, plan.block), plan, vis)
    flat, thr = A.topk_threshold(probs, plan.nb, plan.topk, vis)
    calls["lists-torch"] = lambda: A.block_lists((flat > thr).reshape(probs.shape))
    calls["lists-tri"] = lambda: BK.compact_block_lists(flat.reshape(probs.shape), thr, plan.nb)
    for var in a.variants.split(","):
        if var.startswith("tri"):
            calls[var] = triton_call(var, q, k_all, v_all, bm, plan.block)
    rows = []
    for fname, fopts, fmode in a.flex_variants:
        A.set_flex_options(fopts, fmode)
        for var in a.variants.split(","):
            row = {"size": f"{out_h}x{out_w}", "variant": var, "flex": fname, "pairs_per_head": pairs / H}

            def score(out, var=var) -> dict:  # noqa: ANN001
                if var == "flex-presorted":  # back to the original order to compare
                    B, H, L, d = out.shape
                    inv = torch.argsort(order_desc, dim=-1)[..., None].expand(B, H, L // plan.block, plan.block * d)
                    out = torch.gather(out.reshape(B, H, -1, plan.block * d), 2, inv).reshape(B, H, L, d)
                if var.startswith("lists"):  # the lists must equal those of the mask the other variants use
                    ok = all(torch.equal(x, y) for x, y in zip(out, A.block_lists(bm), strict=True))
                    return {"snr_db": float("inf") if ok else float("-inf")}
                return {"snr_db": snr_db(out, ref) if var != "flex-ascending" else None}

            flops = None if var.startswith("lists") else flop
            rows.append(measure(row, calls.get(var, _unknown(var)), score, flops, a.iters))
    A.set_flex_options(None, None)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="768x1408,1080x1920", type=_parse_sizes)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--variants", default="bf16,fp8")
    p.add_argument("--flex-variants", default="USE_TMA=true", type=parse_flex_variants)
    p.add_argument(
        "--layout",
        choices=("plain", "model", "captured"),
        default="plain",
        help="plain: contiguous q, k, v; model: q a (B, L, H, d) view, k and v views into a 121-window ring; "
        "captured: one steady call of the model itself (variants flex-lists, tri... and fa4...)",
    )
    p.add_argument("--layer", type=int, default=15, help="the DiT layer whose call --layout captured keeps")
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        p.error("needs a CUDA device (FlexAttention's compiled kernel)")
    unknown = {v for v in a.variants.split(",") if not v.startswith(("tri", "fa4"))} - {
        "lists-torch",
        "lists-tri",
        "bf16",
        "fp8",
        "bf16-mod",
        "fp8-qk",
        "deq",
        "cudnn",
        "cudnn-one",
        "flex-one",
        "flex-presorted",
        "flex-ascending",
        "flex-lists",
    }
    if unknown:
        p.error(f"unknown variants: {sorted(unknown)}")
    # every shape and variant compiles its own FlexAttention graph; past the default limit dynamo falls back to
    # the unfused eager kernel, which materialises the scores
    torch._dynamo.config.cache_size_limit = 64
    results = []
    for out_h, out_w in a.sizes:
        run = run_captured if a.layout == "captured" else run_size
        results += run(out_h, out_w, a, torch.device("cuda"))
    print(f"{'size':>10} {'variant':>14} {'flex':>14} {'ms':>7} {'x30 ms':>7} {'TFLOP/s':>8} {'SNR dB':>7}")
    for r in results:
        if "error" in r:
            print(f"{r['size']:>10} {r['variant']:>14} {r['flex']:>14}  {r['error']}")
            continue
        print(
            f"{r['size']:>10} {r['variant']:>14} {r['flex']:>14} {r['ms']:7.3f} {r['ms_per_chunk_30_layers']:7.1f}"
            f" {r['tflops'] if r['tflops'] is not None else float('nan'):8.1f}"
            f" {r['snr_db'] if r['snr_db'] is not None else float('nan'):7.2f}"
        )
    if a.json:
        meta = {"torch": torch.__version__, "device": torch.cuda.get_device_name()}
        Path(a.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    return results


if __name__ == "__main__":
    main()
