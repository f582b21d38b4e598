"""FlashVSR streaming benchmark (random weights): FPS, per-chunk latency, peak memory, TFLOP/s.

Runs the full streaming upscaler (LQ projector + DiT with LCSA + TCDecoder + colour fix) through the
engine, once per (output size, attention backend), after an untimed warm-up run of the same size
(FlexAttention compiles there). TFLOP/s counts useful DiT work: linear layers, cross-attention and the
selected 128x128 block pairs of the self-attention (counted on the device, no sync), divided by the DiT
time of the timed run.

    python bench/flashvsr.py                                   # official-1.3b, bf16, CUDA
    python bench/flashvsr.py --size tiny --device cpu --sizes 128x128 --frames 9 --backends dense

Speed levers (each a row of its own, labelled backend+lever, e.g. "flex+fp8"; the plain rows are the
baseline): ``--fp8`` (the DiT blocks' big linears as FP8 e4m3 GEMMs, see
:mod:`streamvsr.models.flashvsr.fp8`), ``--compile-blocks`` (torch.compile of the parts of every DiT block
that compile cleanly, see :func:`streamvsr.pipeline.flashvsr.compile_dit`), or several in one run with ``--levers``:

    python bench/flashvsr.py --sizes 768x1408 --backends flex --levers none,compile,fp8,fp8+compile

Lever parts: ``fp8``, ``compile`` (DiT blocks), ``dec`` (compiled TCDecoder), ``fold`` (the projector's Conv3d as
Conv2d), ``cat`` (the lean KV cache concatenated instead of handed over in pieces), ``streams`` (the decoder on a
second CUDA stream beside the next chunk's DiT), ``gelu`` (with ``fp8``: ``ffn.2`` in FP8 too, its input from the
fused GELU + quantisation kernel; see ``fuse_gelu`` of :func:`convert_dit_linears_to_fp8`), ``epi`` (bf16: ``ffn.0``
with the GELU in its cuBLASLt epilogue, :mod:`streamvsr.models.flashvsr.fused`), ``tail`` / ``tail2`` (the
TCDecoder's full-resolution tail one / two frames at a time: ``TCDecoder.tail_frames``), ``rope32`` (the DiT's RoPE
math in float32 instead of float64 for bf16 tokens: ``WanDiT.rope_fp32_for_half``), ``proj`` (the LQ projector's later
calls compiled: :func:`~streamvsr.pipeline.flashvsr.compile_lq_proj`), ``spare`` (the KV cache with a spare window
slot per layer, so a steady call attends over one contiguous ring), ``ring`` (the KV cache of all layers in one ring
with one free slot, :class:`~streamvsr.models.flashvsr.attention.SharedKVCache`: the same one-piece attention at
the lean cache's memory; the pipeline's default since the session of 2026-11-27, fifth), ``pwork`` / ``pdec`` (with
``streams``: the DiT's or the decoder's CUDA stream at a higher priority), ``ropestack`` (RoPE written as Wan
writes it, :func:`~streamvsr.models.flashvsr.dit.apply_rope_stacked`; the library's form since the fifth session
of 2026-11-27 is one expression), ``crelu`` and ``otaps`` (the TCDecoder's
convolution + ReLU pairs as one cuDNN op, and its last convolution as a GEMM plus a shifted sum:
``TCDecoder.fused_conv_relu`` / ``out_by_taps``), ``mrelu`` (the same fused op for the first two convolutions of
every MemBlock: ``TCDecoder.fused_memblocks``). The upscaler itself runs ``epi`` (CUDA, bf16), ``tail`` and the
decoder's fused ops (CUDA, bf16, official width), the shared KV ring, the DiT's stream first, RoPE in float32
(CUDA, bf16), and everywhere ``means`` (the block means of q and k from the projection step:
``WanDiT.block_means_in_pre``) and ``vorder`` (the flex plans put each window's blocks fewest visible key blocks
first, so the attention kernel starts the long query blocks first:
:func:`~streamvsr.models.flashvsr.attention.set_flex_block_order`) and, on CUDA, ``radixa`` and ``upc`` (below); a
lever without them turns them off, so the pipeline's own path is
``epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc+tpad+blists+ffin``
(with ``--compile``; ``proj`` since the third session of 2026-11-27, the decoder's three for decoders of the official
width since the fourth, ``ring``, ``pwork`` and ``rope32`` since the fifth, ``means`` and ``vorder`` since the
sixth, ``radixa`` and ``upc`` since the seventh, ``tpad`` since the ninth, ``blists`` and ``ffin`` since the
tenth). ``--kv-layout`` only sets the cache of levers without ``ring`` or
``spare``. ``radix``: the LCSA threshold by the Triton radix select, one program per row
(:func:`~streamvsr.models.flashvsr.attention.set_radix_select`); ``radix2`` the same with each row split over
programs of 4096 values; ``radixa`` the faster of the two by row length
(:func:`~streamvsr.models.flashvsr.radix_select.auto_segment`). ``upc``: every nearest x2 upsampling of the
TCDecoder with the 3x3 convolution after it as one sub-pixel convolution (``TCDecoder.subpixel_upsample``,
:func:`~streamvsr.models.flashvsr.fused.nearest2x_conv3x3`; official width). ``tpad``: the frames padded to whole
tokens and the DiT's token grid to whole windows inside the DiT (``FlashVSRUpscaler.pad_to = "tokens"``, the
upscaler's default since the ninth session of 2026-11-27; without it "windows": 1152 rows computed for 1080p);
``blists``: the LCSA block lists built from the selection's scores by one Triton kernel, and ``tattn`` also our
Triton block-sparse attention kernel, programs started longest first, instead of FlexAttention
(:func:`~streamvsr.models.flashvsr.attention.set_block_kernels`; ``tattnr``: in (head, query block) order;
``ts2``: two pipeline stages, ``tn64``: key tiles of 64 rows); ``fa4``: FlashAttention 4's Hopper kernel on the
block lists (``flash-attn-4``; :mod:`~streamvsr.models.flashvsr.fa4`; rows without it use FlexAttention, although
the library's default, ``"auto"``, takes FlashAttention 4 where it is installed);
``ffin``: the input step ([-1, 1] of the bicubic frames) and the output step (AdaIN's elementwise part, [0, 1], uint8
rounding) as one Triton kernel each
(:func:`~streamvsr.pipeline.flashvsr.set_fused_finish`, on by default on CUDA);

Columns: ``FPS`` is the whole timed run (call 0 included); ``steady`` the output frames of the steady calls over
their times, each call synchronised (DiT + decoder + colour fix only: the upsampling and the LQ projector run
before the calls); ``piped`` the end-to-end throughput when the caller keeps pushing and reads each output back at
most ``--lag`` pushes later (2; a CLI's encoder queue bounds it likewise): the frames between two CUDA events
recorded after the pushes, ``lag`` pushes after call 0's and ``lag`` pushes before the last, so that the work queued
ahead of the GPU is the same at both ends. Until the fifth session of 2026-11-27 nothing was read back and the
window ran from call 0's event to the last one (``piped_open_fps`` in the JSON, ``--lag 0``): once the DiT's stream
had the higher priority, the DiT ran chunks ahead while call 0's decode waited, and that window left their time out
(62.3 to 62.7 "FPS" over 97 frames where 481 frames gave 57.1 on an H100). Use 161 frames or more.
Beside them, per steady push of that window, the host's time inside ``push()`` and waiting for the output
(``host_push_ms``, ``host_wait_ms``), and one steady push alone on an idle GPU (``launch_ms``: the host's time to
launch it; ``push_alone_ms``: until the GPU has done it). Where the launch takes as long as the push alone, the
host limits the rate.

Every lever but the baseline first reports the PSNR of its output against the plain model on the same
clip (``psnr_vs_bf16_db``; ``fp8_psnr_db`` for FP8 levers), before its timed runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from streamvsr.models.flashvsr import attention as attn_mod
from streamvsr.models.flashvsr import dit as dit_mod
from streamvsr.models.flashvsr.config import SIZES, AttentionConfig
from streamvsr.models.flashvsr.fp8 import DEFAULT_INCLUDE, convert_dit_linears_to_fp8
from streamvsr.models.flashvsr.fused import ffn_gelu_fused, fuse_ffn_gelu, unfuse_ffn_gelu
from streamvsr.pipeline.engine import Engine
from streamvsr.pipeline.flashvsr import (
    ChunkInfo,
    Compiled,
    FlashVSRUpscaler,
    compile_decoder,
    compile_dit,
    compile_lq_proj,
    get_fused_finish,
    padded_frame_count,
    pipeline_flex_options,
    set_fused_finish,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_memory import peak_attribution, print_attribution  # noqa: E402


def _parse_sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(","):
        h, w = item.lower().split("x")
        out.append((int(h), int(w)))
    return out


class _BlockCounter:
    """Counts selected block pairs of every LCSA call on the device (no host sync)."""

    def __init__(self) -> None:
        self.orig = attn_mod.select_blocks
        self.orig_lists = attn_mod.select_block_lists
        self.total: torch.Tensor | None = None
        self._in_lists = False  # select_block_lists may call select_blocks: count once

    def _add(self, s: torch.Tensor) -> None:
        self.total = s if self.total is None else self.total + s

    def __enter__(self) -> _BlockCounter:
        def counting(*a, **k):  # noqa: ANN002, ANN003, ANN202
            m = self.orig(*a, **k)
            if not self._in_lists:
                self._add(m.sum())
            return m

        def counting_lists(*a, **k):  # noqa: ANN002, ANN003, ANN202
            self._in_lists = True
            try:
                num, idx = self.orig_lists(*a, **k)
            finally:
                self._in_lists = False
            self._add(num.sum())
            return num, idx

        attn_mod.select_blocks = counting
        attn_mod.select_block_lists = counting_lists
        return self

    def __exit__(self, *exc: object) -> None:
        attn_mod.select_blocks = self.orig
        attn_mod.select_block_lists = self.orig_lists

    def value(self) -> int:
        return 0 if self.total is None else int(self.total.item())


def _dit_flops(cfg, tokens: int, block_pairs: int, full_pairs: int) -> float:  # noqa: ANN001
    """Useful DiT FLOPs (2 per multiply-add) for ``tokens`` query tokens over the run."""
    d = cfg.dit
    per_tok_layer = 4 * d.dim**2 + 2 * d.dim**2 + 2 * d.dim * d.ffn_dim + 2 * d.text_len * d.dim
    linear = 2.0 * tokens * per_tok_layer * d.num_layers
    blk = cfg.attention.block_tokens
    pairs = block_pairs + full_pairs  # summed over heads and layers
    attention = 2.0 * 2 * blk * blk * d.head_dim * pairs
    return linear + attention


def run_one(
    cfg,  # noqa: ANN001
    upscaler: FlashVSRUpscaler,
    out_hw: tuple[int, int],
    frames: int,
    backend: str,
    device: torch.device,
    quick: bool = False,
    mem_trace: bool = False,
    lag: int = 2,
    uint8: bool = False,
) -> dict:
    h, w = out_hw
    lr = torch.rand(frames, 3, math.ceil(h / 4), math.ceil(w / 4))  # on the host, streamed in chunks
    if uint8:  # frames as a video decoder hands them (the CLI's path); the outputs are uint8 too
        lr = lr.mul(255).round().to(torch.uint8)
    upscaler.attention = AttentionConfig(**{**cfg.attention.__dict__, "backend": backend})
    chunks: list[ChunkInfo] = []
    engine = Engine(upscaler, device=device)

    def once(x: torch.Tensor, record: bool, split_peak: bool = False) -> tuple[float, dict]:
        """Stream x through the engine; outputs are checked and dropped (memory stays bounded).

        split_peak (CUDA): the peak of allocated memory up to the first push with outputs (call 0) is returned
        as ``peak_call0``, and the peak statistics are reset there, so the caller reads the steady calls' own."""
        upscaler.on_chunk = chunks.append if record else None
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        n_out, finite, hw = 0, torch.ones((), dtype=torch.bool, device=device), None
        marks: list[tuple[int, torch.cuda.Event]] = []  # (frames, event after them) per push with outputs
        peak_call0 = None
        host: list[tuple[float, float]] = []  # per push with outputs: (host s inside push(), host s waiting after)

        def stream():  # noqa: ANN202 - one chunk at a time, then the flush
            for i in range(0, x.shape[0], 8):
                t = time.perf_counter()
                out = engine.push(x[i : i + 8])
                yield out, time.perf_counter() - t
            yield engine.flush(), None

        for out, push_s in stream():
            pushed = push_s is not None
            if split_peak and peak_call0 is None and out.shape[0] and device.type == "cuda":
                peak_call0 = torch.cuda.max_memory_allocated()
                torch.cuda.reset_peak_memory_stats()
            n_out += out.shape[0]
            finite &= torch.isfinite(out).all()
            hw = tuple(out.shape[-2:])
            if pushed and out.shape[0] and device.type == "cuda" and not record:
                marks.append((out.shape[0], torch.cuda.Event(enable_timing=True)))
                marks[-1][1].record()
                t = time.perf_counter()
                if lag and len(marks) > lag:  # a caller that reads each output back at most `lag` pushes later
                    marks[-1 - lag][1].synchronize()
                host.append((push_s, time.perf_counter() - t))
        if device.type == "cuda":
            torch.cuda.synchronize()
        # pipelined throughput between two steady marks (events after the pushes with outputs): from the mark
        # `lag` pushes after call 0's to the mark `lag` pushes before the last, so that the work queued ahead
        # of the GPU is the same at both ends (the last marks drain the queue; the first ones fill it)
        piped, piped_open = None, None
        a, b = 1 + lag, len(marks) - 1 - lag
        if lag and b > a:
            piped = sum(n for n, _ in marks[a + 1 : b + 1]) / (marks[a][1].elapsed_time(marks[b][1]) / 1000)
        if len(marks) >= 2:  # the sessions before the fifth of 2026-11-27: call 0's mark to the last one
            piped_open = sum(n for n, _ in marks[1:]) / (marks[0][1].elapsed_time(marks[-1][1]) / 1000)
        if not lag:
            piped = piped_open
        # the host's share of the same window: if the pushes alone take as long as the GPU, the host limits
        steady_host = host[a + 1 : b + 1] if lag and b > a else host[1:]
        host_push_ms = 1e3 * sum(p for p, _ in steady_host) / len(steady_host) if steady_host else None
        host_wait_ms = 1e3 * sum(w for _, w in steady_host) / len(steady_host) if steady_host else None
        info = {
            "frames_out": n_out,
            "finite": bool(finite),
            "hw": hw,
            "piped_fps": piped,
            "piped_open_fps": piped_open,
            "peak_call0": peak_call0,
            "host_push_ms": host_push_ms,
            "host_wait_ms": host_wait_ms,
        }
        return time.perf_counter() - t0, info

    warmup_s = None
    if not quick:
        warmup_s, _ = once(lr[: min(frames, 33)], record=False)  # warm-up: compiles call-0 and steady shapes
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with _BlockCounter() as counter:
        seconds, out = once(lr, record=quick, split_peak=True)
    peak_steady = torch.cuda.max_memory_allocated() if device.type == "cuda" else None
    if not quick:  # per-chunk timings in a second pass (syncing per chunk perturbs the overlap slightly)
        once(lr, record=True)
    launch_ms = alone_ms = None
    if not quick and device.type == "cuda":  # each steady push alone on an idle GPU: host launch time against all
        upscaler.on_chunk = None
        launch, alone = [], []
        for i in range(0, min(frames, 121) - 7, 8):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            engine.push(lr[i : i + 8])
            t1 = time.perf_counter()
            torch.cuda.synchronize()
            if i >= 40:  # steady pushes only (call 0 is the fourth push)
                launch.append(t1 - t0)
                alone.append(time.perf_counter() - t0)
        engine.flush()
        if launch:
            launch_ms, alone_ms = 1e3 * statistics.median(launch), 1e3 * statistics.median(alone)
    trace = None
    if mem_trace and device.type == "cuda":  # one more pass with the allocator's history: what the peak holds
        trace = peak_attribution(lambda: once(lr, record=False))
    pairs = counter.value()
    assert out["frames_out"] == frames and out["hw"] == (h, w), out
    ph = -(-math.ceil(h / 4) // upscaler.spec.multiple) * upscaler.spec.multiple * 4
    pw = -(-math.ceil(w / 4) // upscaler.spec.multiple) * upscaler.spec.multiple * 4
    tokens_per_latent = (ph // 16) * (pw // 16)
    n_latents = (padded_frame_count(frames) - 1) // 4
    tokens = tokens_per_latent * n_latents
    flops = _dit_flops(cfg, tokens, pairs, 0)
    dit_s = sum(c.dit_s for c in chunks)
    steady = [c for c in chunks if c.index > 0]
    return {
        "out_hw": [h, w],
        "padded_hw": [ph, pw],
        "backend": backend,
        "frames": frames,
        "seconds": seconds,
        "fps": frames / seconds,
        "call0_s": chunks[0].total_s if chunks else None,
        "steady_chunk_s": sum(c.total_s for c in steady) / len(steady) if steady else None,
        # output frames per second of the steady calls, each synchronised (DiT + decoder: no upsampling, no projector)
        "steady_fps": sum(c.frames[1] - c.frames[0] for c in steady) / sum(c.total_s for c in steady)
        if steady
        else None,
        # the issue's measure, end to end: the caller keeps pushing, no chunk is waited for (timed run, CUDA events)
        "piped_fps": out["piped_fps"],
        "piped_open_fps": out["piped_open_fps"],  # the earlier sessions' piped (see once())
        "piped_lag": lag,
        # per steady push in the piped window: host time inside push() (launching; it also waits where the model
        # syncs) and host time waiting for the output `lag` pushes back (the GPU is the limit where this is > 0)
        "host_push_ms": out["host_push_ms"],
        "host_wait_ms": out["host_wait_ms"],
        # one steady push on an idle GPU (median): the host's time to launch it, and until the GPU has done it
        "launch_ms": launch_ms,
        "push_alone_ms": alone_ms,
        "steady_dit_s": sum(c.dit_s for c in steady) / len(steady) if steady else None,
        "steady_decode_s": sum(c.decode_s for c in steady) / len(steady) if steady else None,
        "chunks": [{**c.__dict__, "latents": list(c.latents), "frames": list(c.frames)} for c in chunks],
        # the timed run's peak, and its two parts: up to call 0's outputs, and the steady calls after them
        "peak_mem_gb": max(out["peak_call0"] or 0, peak_steady) / 2**30 if device.type == "cuda" else None,
        "peak_call0_gb": out["peak_call0"] / 2**30 if out["peak_call0"] is not None else None,
        "peak_steady_gb": peak_steady / 2**30 if peak_steady is not None and out["peak_call0"] is not None else None,
        "mem_trace": trace,
        "selected_block_pairs": pairs,
        "dit_tflop": flops / 1e12,
        "dit_tflops_per_s": flops / 1e12 / dit_s if dit_s else None,
        "finite": out["finite"],
        "frames_out": out["frames_out"],
        "warmup_s": warmup_s,
    }


# what a kernel (CUDA) or op (CPU) name says it is; the first match wins
_KINDS = (
    ("attention", ("flex_attention", "attention", "fmha", "flash", "sdpa")),
    ("gemm", ("gemm", "gemv", "nvjet", "cutlass", "xmma", "scaled_mm", "aten::mm", "aten::addmm", "aten::bmm")),
    ("conv", ("conv", "cudnn")),
    ("Triton template", ("triton_tem",)),  # compiled FlexAttention (and autotuned GEMMs under max-autotune)
    ("fused (Triton)", ("triton",)),
    ("copy", ("copy", "cat", "index", "gather", "scatter")),
)


def kernel_kind(name: str) -> str:
    low = name.lower()
    return next((kind for kind, keys in _KINDS if any(k in low for k in keys)), "other")


def interval_union(spans: list[tuple[float, float]]) -> float:
    """The total length covered by the (start, end) intervals, overlaps counted once."""
    total, cur_a, cur_b = 0.0, None, None
    for a, b in sorted(spans):
        if cur_b is None or a > cur_b:
            total += 0.0 if cur_b is None else cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    return total if cur_b is None else total + cur_b - cur_a


def _steady_engine(
    up: FlashVSRUpscaler, out_hw: tuple[int, int], backend: str, device: torch.device, chunks: int
) -> tuple[Engine, torch.Tensor]:
    """An engine past the first call and two steady ones, and the LR clip whose frames 41 + 8 i .. 48 + 8 i
    (i < ``chunks``) are the steady pushes to time; the device is synchronised."""
    h, w = out_hw
    lr = torch.rand(41 + 8 * chunks, 3, math.ceil(h / 4), math.ceil(w / 4))
    up.attention = AttentionConfig(**{**up.cfg.attention.__dict__, "backend": backend})
    up.on_chunk = None
    engine = Engine(up, device=device)
    for i in (0, 25, 33):  # the first call (25 frames) and two steady ones
        engine.push(lr[i : i + (25 if i == 0 else 8)])
    if device.type == "cuda":
        torch.cuda.synchronize()
    return engine, lr


def profile_steady(
    up: FlashVSRUpscaler, out_hw: tuple[int, int], backend: str, device: torch.device, chunks: int
) -> dict:
    """torch.profiler over ``chunks`` steady 8-frame calls (after the first call and two steady ones): the time
    per chunk of each kind of kernel (CUDA) or op (CPU), the 15 costliest, and on CUDA the kernel time of each
    eager op that launched kernels (``by_op``: op name, input shapes and its parent op; the compiled parts show as
    their Triton/Inductor wrappers), the 40 costliest."""
    from torch.profiler import ProfilerActivity, profile

    engine, lr = _steady_engine(up, out_hw, backend, device, chunks)
    cuda = device.type == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts, record_shapes=cuda) as prof:
        for i in range(chunks):
            engine.push(lr[41 + 8 * i : 49 + 8 * i])
        if cuda:
            torch.cuda.synchronize()
    engine.flush()
    up.reset()
    rows = []
    for e in prof.key_averages():
        if cuda and str(e.device_type) != "DeviceType.CUDA":
            continue  # CUDA: kernels only (the ops that launch them would count twice)
        if not cuda and "::" not in e.key:
            continue  # CPU: aten ops only
        t = e.self_device_time_total if cuda else e.self_cpu_time_total
        if t > 0:
            rows.append((e.key, t / 1e3 / chunks, e.count / chunks))
    kinds: dict[str, float] = {}
    for name, ms, _ in rows:
        kinds[kernel_kind(name)] = kinds.get(kernel_kind(name), 0.0) + ms
    top = sorted(rows, key=lambda r: -r[1])[:15]
    by_op: dict[tuple[str, str, str, str], list] = {}  # (op, parent op, kernel kind, shapes) -> [ms, kernels]
    busy_ms = span_ms = None
    # device events without the ranges that name a compiled graph (user annotations: they span their kernels
    # and the gaps between them)
    device = [
        e
        for e in prof.events()
        if str(e.device_type) == "DeviceType.CUDA"
        and not getattr(e, "is_user_annotation", False)
        and not e.name.startswith("## ")
    ]
    if cuda:  # the GPU's busy time: the union of all kernels' intervals (streams overlap), against their span
        spans = [(e.time_range.start, e.time_range.end) for e in device if e.time_range.end > e.time_range.start]
        if spans:
            busy_ms = interval_union(spans) / 1e3 / chunks
            span_ms = (max(b for _, b in spans) - min(a for a, _ in spans)) / 1e3 / chunks
    longest, streams = [], {}
    if cuda:
        for e in prof.events():
            if not e.kernels or str(e.device_type) != "DeviceType.CPU":
                continue
            parent = e.cpu_parent.name if e.cpu_parent else ""
            shapes = str(e.input_shapes)[:100]
            for k in e.kernels:  # one row per (op, parent, kernel kind, input shapes)
                acc = by_op.setdefault((e.name, parent, kernel_kind(k.name), shapes), [0.0, 0.0])
                acc[0] += k.duration / 1e3 / chunks  # us -> ms per chunk
                acc[1] += 1 / chunks
        ops = {  # CPU ops by id (a kernel's linked_correlation_id; runtime calls carry a link themselves)
            e.id: e
            for e in prof.events()
            if str(e.device_type) == "DeviceType.CPU" and not getattr(e, "linked_correlation_id", 0)
        }
        for e in device:  # single kernels: the longest ones, with their launching op and stream
            dur = (e.time_range.end - e.time_range.start) / 1e3
            streams[e.device_resource_id] = streams.get(e.device_resource_id, 0.0) + dur / chunks
            op = ops.get(getattr(e, "linked_correlation_id", 0))
            longest.append(
                (
                    dur,
                    e.name[:110],
                    e.device_resource_id,
                    op.name if op else "",
                    str(op.input_shapes)[:80] if op else "",
                )
            )
        longest = sorted(longest, key=lambda r: -r[0])[:15]
    return {
        "chunks": chunks,
        "cuda": cuda,
        "ms_per_chunk": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
        "total_ms_per_chunk": sum(kinds.values()),
        "gpu_busy_ms_per_chunk": busy_ms,  # union of kernel intervals
        "gpu_span_ms_per_chunk": span_ms,  # first kernel's start to last kernel's end
        "top": [{"name": n[:120], "ms_per_chunk": ms, "calls_per_chunk": c} for n, ms, c in top],
        "by_op": [
            {"op": k[0], "parent": k[1], "kind": k[2], "ms_per_chunk": v[0], "kernels_per_chunk": v[1], "shapes": k[3]}
            for k, v in sorted(by_op.items(), key=lambda kv: -kv[1][0])[:80]
        ],
        "ms_per_stream": streams,  # kernel time per chunk on each CUDA stream (without the compiled graphs' ranges)
        "longest": [
            {"ms": d, "kernel": n, "stream": st, "op": op, "shapes": sh} for d, n, st, op, sh in longest
        ],  # single kernels; one on a second stream runs longer while the other stream holds the SMs
    }


def host_profile_steady(
    up: FlashVSRUpscaler, out_hw: tuple[int, int], backend: str, device: torch.device, n: int
) -> str:
    """cProfile of the host over ``n`` steady 8-frame pushes (the GPU keeps running; no sync inside): where the
    Python time of a push goes. cProfile's own overhead inflates Python-heavy functions; read the shares."""
    import cProfile
    import io
    import pstats

    engine, lr = _steady_engine(up, out_hw, backend, device, n)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for i in range(n):
        engine.push(lr[41 + 8 * i : 49 + 8 * i])
    prof.disable()
    wall = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.synchronize()
    engine.flush()
    up.reset()
    buf = io.StringIO()
    buf.write(f"host profile: {n} steady pushes, {1e3 * wall / n:.1f} ms per push under cProfile\n")
    st = pstats.Stats(prof, stream=buf)
    st.sort_stats("tottime").print_stats(35)
    st.sort_stats("cumulative").print_stats(45)
    return buf.getvalue()


def _print_profile(label: str, prof: dict) -> None:
    what = "GPU kernel" if prof["cuda"] else "op"
    print(f"{label}: {what} time per steady chunk {prof['total_ms_per_chunk']:.1f} ms", flush=True)
    if prof.get("gpu_busy_ms_per_chunk") is not None:
        print(
            f"  GPU busy (union of kernels) {prof['gpu_busy_ms_per_chunk']:.1f} ms of a span of "
            f"{prof['gpu_span_ms_per_chunk']:.1f} ms per chunk",
            flush=True,
        )
    for kind, ms in prof["ms_per_chunk"].items():
        print(f"  {kind:<16}{ms:9.2f} ms", flush=True)
    for t in prof["top"]:
        print(f"    {t['ms_per_chunk']:8.2f} ms {t['calls_per_chunk']:6.0f}x  {t['name'][:90]}", flush=True)
    if prof.get("by_op"):
        print("  kernel time by launching op and kernel kind (op <- parent [kind]: first input shapes)", flush=True)
    if prof.get("ms_per_stream"):
        per = ", ".join(f"{st}: {ms:.1f}" for st, ms in sorted(prof["ms_per_stream"].items()))
        print(f"  kernel time per stream (ms per chunk) {per}", flush=True)
    for r in prof.get("longest", []):
        print(
            f"    single kernel {r['ms']:7.3f} ms on stream {r['stream']}: {r['kernel'][:70]} <- {r['op']} "
            f"{r['shapes']}"
        )
    for o in prof.get("by_op", []):
        print(
            f"    {o['ms_per_chunk']:8.2f} ms {o['kernels_per_chunk']:6.0f}x  {o['op'][:60]} <- {o['parent'][:40]} "
            f"[{o['kind']}]: {o['shapes']}",
            flush=True,
        )


def check_backends(up: FlashVSRUpscaler, out_hw: tuple[int, int], latents: int = 6) -> dict:
    """One DiT call (call-0 shape) with flex and dense on the same input: how far apart are they?"""
    cfg = up.cfg
    h, w = (-(-x // 128) * 128 for x in out_hw)
    g = torch.Generator(device=up.device).manual_seed(0)
    x = torch.randn((1, 16, latents, h // 8, w // 8), generator=g, device=up.device, dtype=up.dtype)
    lq = torch.randn((1, latents * (h // 16) * (w // 16), cfg.dit.dim), generator=g, device=up.device, dtype=up.dtype)
    state = up.dit.prepare(up.context, 1000.0)
    outs = {}
    for backend in ("dense", "flex"):
        attn = AttentionConfig(**{**cfg.attention.__dict__, "backend": backend})
        outs[backend] = up.dit.forward_chunk(
            x, lq, t_positions=torch.arange(latents, device=up.device), attn=attn, state=state
        ).float()
    d = (outs["flex"] - outs["dense"]).abs()
    ref = outs["dense"].abs().mean().item()
    return {
        "out_hw": [h, w],
        "max_abs_diff": d.max().item(),
        "mean_abs_diff": d.mean().item(),
        "mean_abs_ref": ref,
        "finite": bool(torch.isfinite(outs["flex"]).all() and torch.isfinite(outs["dense"]).all()),
    }


# ----------------------------------------------------------------------------------------------
# Speed levers: FP8 linears, torch.compile of the DiT blocks' parts
# ----------------------------------------------------------------------------------------------

# FP8 linears, compiled DiT blocks, compiled TCDecoder, the projector's Conv3d as Conv2d (time fold), "cat": the
# lean KV cache concatenates ring and new keys instead of attending over them as pieces, and the decoder on a
# second CUDA stream
LEVER_PARTS = (
    "fp8",
    "gelu",
    "epi",
    "compile",
    "dec",
    "proj",
    "fold",
    "cat",
    "spare",
    "ring",
    "streams",
    "pwork",
    "pdec",
    "tail",
    "tail2",
    "crelu",
    "otaps",
    "mrelu",
    "rope32",
    "ropestack",
    "means",
    "vorder",
    "radix",
    "radix2",
    "radixa",
    "upc",
    "tpad",
    "blists",
    "tattn",
    "tattnr",
    "fa4",
    "ts2",
    "tn64",
    "ffin",
)
_APPLY_ROPE = dit_mod.apply_rope
LEVERS = ("none", "fp8", "compile", "fp8+compile", "compile+dec", "fp8+compile+dec", "compile+dec+fold")


def _parse_levers(text: str) -> list[str]:
    """'none,fp8,compile+fp8' -> canonical names ('none', 'fp8', 'compile', 'fp8+compile'), deduplicated."""
    out: list[str] = []
    for item in text.split(","):
        parts = {x.strip().lower() for x in item.split("+") if x.strip()}
        if not parts or parts == {"none"}:
            name = "none"
        elif parts <= set(LEVER_PARTS):
            if "gelu" in parts and "fp8" not in parts:
                raise ValueError(f"lever {item!r}: gelu goes with fp8")
            if "epi" in parts and "fp8" in parts:
                raise ValueError(f"lever {item!r}: epi is the bf16 FFN (with fp8 use gelu)")
            if {"tail", "tail2"} <= parts:
                raise ValueError(f"lever {item!r}: tail or tail2, not both")
            name = "+".join(x for x in LEVER_PARTS if x in parts)
        else:
            raise ValueError(f"unknown lever {item!r}; known: {', '.join(LEVERS)} (combine with '+')")
        if name not in out:
            out.append(name)
    return out


def _psnr_clip(out_hw: tuple[int, int], frames: int, seed: int = 0) -> torch.Tensor:
    """A fixed smooth random LR clip (frames, 3, ceil(h/4), ceil(w/4)) in [0, 1] on the host."""
    h, w = (math.ceil(x / 4) for x in out_hw)
    g = torch.Generator().manual_seed(seed)
    keys = torch.rand(1, 3, max(2, frames // 8), max(2, h // 8), max(2, w // 8), generator=g)
    clip = F.interpolate(keys, size=(frames, h, w), mode="trilinear", align_corners=False)[0].transpose(0, 1)
    return (clip + 0.05 * torch.rand(clip.shape, generator=g)).clamp(0, 1).contiguous()


def _render(up: FlashVSRUpscaler, clip: torch.Tensor, backend: str, device: torch.device) -> torch.Tensor:
    """Stream ``clip`` through the upscaler (noise seeded per stream): (T, 3, 4h, 4w) float32 on the host."""
    up.attention = AttentionConfig(**{**up.cfg.attention.__dict__, "backend": backend})
    up.on_chunk = None
    engine = Engine(up, device=device)
    outs = [engine.push(clip[i : i + 8]).cpu() for i in range(0, clip.shape[0], 8)]
    outs.append(engine.flush().cpu())
    return torch.cat(outs)


def _psnr_db(x: torch.Tensor, ref: torch.Tensor) -> float:
    """PSNR in dB of [0, 1] frames."""
    mse = (x.double() - ref.double()).pow(2).mean().item()
    return 10 * math.log10(1.0 / mse) if mse > 0 else math.inf


class _LeverState:
    """Turns the upscaler's DiT into each lever in turn (FP8 conversion is one-way: non-FP8 levers go first)."""

    def __init__(
        self,
        up: FlashVSRUpscaler,
        compile_mode: str,
        fp8_fast_accum: bool,
        fp8_include: tuple[str, ...] = DEFAULT_INCLUDE,
    ):
        self.up = up
        self.fp8_include = fp8_include
        self.compile_mode = compile_mode
        self.fp8_fast_accum = fp8_fast_accum
        self.fp8_linears: int | None = None  # set once converted
        self.gelu_fused = False  # ffn.2 converted too, with the GELU fused into its quantisation
        # bf16 ffn.0 + GELU as one GEMM with the GELU epilogue (fused.fuse_ffn_gelu; the CUDA upscaler's default)
        self.epi_fused = ffn_gelu_fused(up.dit)
        self.compiled: Compiled | None = None
        self.compiled_dec: Compiled | None = None
        self.compiled_proj: Compiled | None = None
        self.kv_layout = up.kv_layout  # the run's KV cache (--kv-layout); lever parts "spare" and "ring" change it
        self.block_order = attn_mod.get_flex_block_order()  # restored by close()
        self.radix_select = attn_mod.get_radix_select()  # likewise
        self.block_kernels = attn_mod.get_block_kernels()  # likewise
        self.fused_finish = get_fused_finish()  # likewise

    def _drop_compiled(self) -> None:
        """Undo the compiled DiT blocks (before the blocks change; they are compiled again when wanted)."""
        if self.compiled is not None:
            self.compiled.undo()
            self.compiled = None

    def _toggle(self, name: str, want: bool, compile_fn: Callable[[], Compiled]) -> None:
        """Compile (``compile_fn``) or undo the part whose handle is the attribute ``name``, as the lever wants."""
        handle = getattr(self, name)
        if handle is not None and not want:
            handle.undo()
            setattr(self, name, None)
        if want and handle is None:
            setattr(self, name, compile_fn())

    def apply(self, lever: str) -> None:
        parts = set(lever.split("+"))
        want_fp8, want_compile = "fp8" in parts, "compile" in parts
        if self.fp8_linears is not None and not want_fp8:
            raise RuntimeError(f"lever {lever!r} needs the bf16 DiT, but it was converted to FP8 already")
        if not want_compile or (want_fp8 and self.fp8_linears is None):
            self._drop_compiled()
        if want_fp8 and self.fp8_linears is None:
            if self.epi_fused:  # ffn.0 back to nn.Linear, which the conversion takes
                unfuse_ffn_gelu(self.up.dit)
                self.epi_fused = False
            with torch.no_grad():
                self.fp8_linears = convert_dit_linears_to_fp8(
                    self.up.dit, self.fp8_include, use_fast_accum=self.fp8_fast_accum
                )
            if self.up.device.type == "cuda":
                torch.cuda.empty_cache()
        want_gelu = "gelu" in parts
        if want_gelu and not want_fp8:
            raise ValueError(f"lever {lever!r}: gelu goes with fp8")
        if self.gelu_fused and not want_gelu:
            raise RuntimeError(f"lever {lever!r} needs ffn.2 in bf16, but it was fused into FP8 already")
        if want_gelu and not self.gelu_fused:
            self._drop_compiled()  # the blocks change: compile them again
            with torch.no_grad():
                n = convert_dit_linears_to_fp8(
                    self.up.dit, ("ffn.2",), use_fast_accum=self.fp8_fast_accum, fuse_gelu=True
                )
            self.fp8_linears = (self.fp8_linears or 0) + n
            self.gelu_fused = True
        want_epi = "epi" in parts
        if want_epi != self.epi_fused:
            self._drop_compiled()  # the blocks change: compile them again
            (fuse_ffn_gelu if want_epi else unfuse_ffn_gelu)(self.up.dit)
            self.epi_fused = want_epi
        mode = None if self.compile_mode == "default" else self.compile_mode
        if want_compile and self.compiled is None:
            self.compiled = compile_dit(self.up.dit, mode)
        self._toggle("compiled_dec", "dec" in parts, lambda: compile_decoder(self.up.decoder, mode))
        self._toggle("compiled_proj", "proj" in parts, lambda: compile_lq_proj(self.up.lq_proj, mode))
        self.up.lq_proj.time_fold = "fold" in parts
        self.up.kv_pieces = "cat" not in parts  # takes effect at the stream's reset
        self.up.kv_layout = "spare" if "spare" in parts else "shared" if "ring" in parts else self.kv_layout  # likewise
        self.up.streams = "streams" in parts  # decode on a second CUDA stream beside the next DiT call
        self.up.stream_priority = "work" if "pwork" in parts else "decode" if "pdec" in parts else "none"
        self.up.decoder.tail_frames = 1 if "tail" in parts else 2 if "tail2" in parts else None
        # the decoder's tail kernels (fused.conv2d_relu, fused.conv3x3_by_taps); the compiled decoder recompiles
        self.up.decoder.fused_conv_relu = "crelu" in parts
        self.up.decoder.out_by_taps = "otaps" in parts
        self.up.decoder.fused_memblocks = "mrelu" in parts
        self.up.dit.rope_fp32_for_half = "rope32" in parts  # the tables' dtype changes: compiled parts recompile
        # RoPE as Wan writes it (stacked halves) instead of the library's one expression; Dynamo guards on the global
        dit_mod.apply_rope = dit_mod.apply_rope_stacked if "ropestack" in parts else _APPLY_ROPE
        self.up.dit.block_means_in_pre = "means" in parts  # pre's graph changes: the compiled blocks recompile
        attn_mod.set_flex_block_order("vorder" in parts)  # a window's blocks fewest visible key blocks first
        # the LCSA threshold by the Triton radix select: one program per row, or rows split by 4096 values
        radix = "auto" if "radixa" in parts else 4096 if "radix2" in parts else None
        attn_mod.set_radix_select(bool({"radix", "radix2", "radixa"} & set(parts)), radix)
        self.up.decoder.subpixel_upsample = "upc" in parts  # fused.nearest2x_conv3x3; the compiled decoder recompiles
        self.up.pad_to = "tokens" if "tpad" in parts else "windows"  # new shapes: the compiled parts recompile
        # our Triton kernels for the block lists (blists) and for the block-sparse attention as well (tattn)
        set_fused_finish("ffin" in parts)  # the output step as one Triton kernel (CUDA)
        # the attention kernel on the block lists: ours (tattn), FlashAttention 4's (fa4), else FlexAttention
        kernel = "triton" if {"tattn", "tattnr"} & set(parts) else "fa4" if "fa4" in parts else "flex"
        opts = {"longest_first": False} if "tattnr" in parts else {}
        opts.update({"num_stages": 2} if "ts2" in parts else {})  # our kernel: two pipeline stages
        opts.update({"block_n": 64} if "tn64" in parts else {})  # key tiles of 64 rows
        attn_mod.set_block_kernels(kernel == "triton" or "blists" in parts, kernel, opts)

    def close(self) -> None:
        """Undo the compile levers and the process-wide choices (RoPE's form, the flex plans' block order)."""
        for handle in (self.compiled, self.compiled_dec, self.compiled_proj):
            if handle is not None:
                handle.undo()
        self.compiled = self.compiled_dec = self.compiled_proj = None
        dit_mod.apply_rope = _APPLY_ROPE
        attn_mod.set_flex_block_order(self.block_order)
        attn_mod.set_radix_select(*self.radix_select)
        attn_mod.set_block_kernels(*self.block_kernels)
        set_fused_finish(self.fused_finish)

    def info(self, lever: str) -> dict:
        d: dict = {"lever": lever}
        if "fp8" in lever:
            d.update(fp8_linears=self.fp8_linears, fp8_fast_accum=self.fp8_fast_accum)
            d.update(fp8_include=list(self.fp8_include) + (["ffn.2"] if self.gelu_fused else []))
            d.update(fp8_gelu_fused=self.gelu_fused)
        if "compile" in lever:
            d.update(compile_mode=self.compile_mode)
        return d


def _label(backend: str, lever: str, variant: str = "default") -> str:
    base = backend if lever == "none" else f"{backend}+{lever}"
    return base if variant == "default" else f"{base}[{variant}]"


def parse_flex_variants(text: str) -> list[tuple[str, dict | None, str | None]]:
    """'default;autotune;BLOCK_M=128,BLOCK_N=64,num_warps=8' -> [(name, kernel_options, compile mode)].

    A variant is ``default`` (PyTorch's choice), ``pipeline`` (what ``FlashVSRUpscaler`` sets on this GPU: see
    :func:`~streamvsr.pipeline.flashvsr.pipeline_flex_options`; resolved in :func:`main`), or comma-separated
    items: ``autotune`` (compile mode
    max-autotune-no-cudagraphs: Inductor times the kernel's configurations) and ``KEY=VALUE`` kernel options
    (FlexKernelOptions; integers, true/false, or names such as BACKEND=FLASH)."""
    out = []
    for name in (x.strip() for x in text.split(";")):
        if not name:
            continue
        opts: dict = {}
        mode = None
        for item in (x.strip() for x in name.split(",")):
            if item in ("default", ""):
                continue
            if item == "pipeline":
                opts["pipeline"] = True  # a marker: main() puts the pipeline's options in its place
                continue
            if item == "autotune":
                mode = "max-autotune-no-cudagraphs"
                continue
            key, sep, val = item.partition("=")
            if not sep or not key:
                raise ValueError(f"flex variant item {item!r} is not KEY=VALUE, 'autotune' or 'default'")
            val = val.strip()
            if val.lower() in ("true", "false"):
                opts[key.strip()] = val.lower() == "true"
            else:
                opts[key.strip()] = int(val) if val.lstrip("-").isdigit() else val  # e.g. BACKEND=FLASH
        out.append((name, opts or None, mode))
    return out or [("default", None, None)]


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="official-1.3b", choices=sorted(SIZES))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default=None, choices=["bf16", "fp16", "fp32"])
    p.add_argument("--sizes", default="768x1408,1080x1920", help="output sizes HxW, comma-separated")
    p.add_argument("--frames", type=int, default=57)
    p.add_argument("--backends", default="flex,dense")
    p.add_argument(
        "--flex-variants",
        default="default",
        help="';'-separated configurations of the compiled FlexAttention kernel, each a row of its own: default, "
        "autotune, or KEY=VALUE kernel options joined by ',' (e.g. 'default;BLOCK_M=128,BLOCK_N=64,num_warps=8')",
    )
    p.add_argument("--decoder", default="tc", choices=["tc", "vae"])
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    p.add_argument(
        "--kv-layout",
        default="shared",
        choices=["shared", "spare", "lean"],
        help="the KV cache (FlashVSRUpscaler's kv_layout; default: the pipeline's, shared)",
    )
    p.add_argument("--kv-lean", action="store_true", help="the same as --kv-layout lean (earlier runs' flag)")
    p.add_argument("--check", action="store_true", help="first compare flex and dense on one DiT call")
    p.add_argument("--quick", action="store_true", help="one pass: no warm-up, chunk timings in the timed run")
    p.add_argument(
        "--uint8",
        action="store_true",
        help="push uint8 frames, as the CLI's video decoder hands them (outputs uint8); default float32 in [0, 1]",
    )
    p.add_argument(
        "--lag",
        type=int,
        default=2,
        help="the piped run reads each output back at most LAG pushes later (0: never, the sessions before the "
        "fifth of 2026-11-27; their piped figure is the JSON's piped_open_fps)",
    )
    p.add_argument("--fp8", action="store_true", help="lever: FP8 e4m3 linears in the DiT blocks (row 'BACKEND+fp8')")
    p.add_argument(
        "--compile-blocks",
        action="store_true",
        help="lever: torch.compile the DiT blocks' parts (row 'BACKEND+compile')",
    )
    p.add_argument(
        "--levers",
        default=None,
        help="comma list of levers run one after the other in one invocation: none (baseline), fp8, compile "
        "(DiT blocks), dec (TCDecoder), proj (LQ projector), and the parts of the module docstring, combined with +, "
        "e.g. fp8+compile+dec; replaces --fp8/--compile-blocks",
    )
    p.add_argument(
        "--compile-mode",
        default="default",
        choices=["default", "max-autotune-no-cudagraphs", "reduce-overhead"],
        help="torch.compile mode of the compile lever (reduce-overhead: CUDA graphs per compiled part, experimental)",
    )
    p.add_argument("--fp8-fast-accum", action="store_true", help="FP8 GEMMs with Hopper fast accumulation")
    p.add_argument(
        "--fp8-include",
        default=",".join(DEFAULT_INCLUDE),
        help="the block linears the FP8 levers convert (names relative to a DiT block, comma-separated)",
    )
    p.add_argument(
        "--mem-trace",
        action="store_true",
        help="after each timed run, one more run with the CUDA allocator's history: what is alive at the peak",
    )
    p.add_argument(
        "--psnr-frames", type=int, default=25, help="clip length of the lever-vs-baseline PSNR check (0: none)"
    )
    p.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="after each timed run, profile N steady chunks (torch.profiler): time per kind of kernel, the top 15",
    )
    p.add_argument(
        "--host-profile",
        type=int,
        default=0,
        metavar="N",
        help="after each timed run, cProfile the host over N steady pushes (Python time by function)",
    )
    args = p.parse_args(argv)
    if args.kv_lean:
        args.kv_layout = "lean"
    try:
        variants = parse_flex_variants(args.flex_variants)
    except ValueError as e:
        p.error(str(e))
    if args.levers is not None and (args.fp8 or args.compile_blocks):
        p.error("--levers replaces --fp8 / --compile-blocks: give one or the other")
    if args.levers is not None:
        try:
            levers = _parse_levers(args.levers)
        except ValueError as e:
            p.error(str(e))
    else:
        flags = [x for x, on in (("fp8", args.fp8), ("compile", args.compile_blocks)) if on]
        levers = _parse_levers("+".join(flags))  # [] -> ["none"]: the plain run
    # one-way conversions go last: FP8, then the fused GELU (which adds ffn.2 to the FP8 linears)
    run_order = sorted(levers, key=lambda x: ("fp8" in x.split("+")) + ("gelu" in x.split("+")))

    device = torch.device(args.device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32, None: None}[args.dtype]
    cfg = SIZES[args.size]
    t0 = time.perf_counter()
    context = None
    if not cfg.dit.learned_context:  # a random stand-in for the official prompt tensor
        context = torch.randn(1, cfg.dit.text_len, cfg.dit.text_dim, device=device)
    up = FlashVSRUpscaler.from_config(
        cfg, device=device, dtype=dtype, decoder=args.decoder, context=context, kv_layout=args.kv_layout
    )
    build_s = time.perf_counter() - t0
    sizes = _parse_sizes(args.sizes)
    backends = args.backends.split(",")
    pipeline_opts = pipeline_flex_options(device, cfg.dit.head_dim)
    variants = [(n, pipeline_opts if o and o.get("pipeline") else o, m) for n, o, m in variants]
    # (backend, variant name, kernel options, compile mode): the flex variants apply to flex alone
    runs = [(b, *v) for b in backends for v in (variants if b == "flex" else [("default", None, None)])]
    fp8_include = tuple(x.strip() for x in args.fp8_include.split(",") if x.strip())
    state = _LeverState(up, args.compile_mode, args.fp8_fast_accum, fp8_include)
    results = []
    with torch.inference_mode(), contextlib.closing(state):
        if args.check:
            for hw in sizes:
                c = check_backends(up, hw)
                print(f"check flex vs dense at {c['out_hw']}: {c}", flush=True)
                results.append({"check": c})
        clip, ref = None, None
        if args.psnr_frames and any(x != "none" for x in levers):  # the plain model's output, for the levers' PSNR
            clip = _psnr_clip(sizes[0], args.psnr_frames)
            ref = _render(up, clip, backends[0], device)
        for lever in run_order:
            extra = state.info(lever)
            try:
                state.apply(lever)
                extra = state.info(lever)
                if ref is not None and lever != "none":
                    t1 = time.perf_counter()
                    psnr = _psnr_db(_render(up, clip, backends[0], device), ref)
                    extra.update(psnr_vs_bf16_db=psnr, psnr_s=time.perf_counter() - t1)
                    extra.update(psnr_hw=list(sizes[0]), psnr_frames=args.psnr_frames, psnr_backend=backends[0])
                    if "fp8" in lever:
                        extra["fp8_psnr_db"] = psnr
                    print(f"{lever}: PSNR vs the plain model {psnr:.2f} dB ({args.psnr_frames} frames)", flush=True)
            except Exception as e:  # a lever that fails to set up: report it and go on with the others
                if lever == "none":
                    raise
                traceback.print_exc()
                for hw in sizes:
                    for backend, variant, _, _ in runs:
                        label = _label(backend, lever, variant)
                        r = {"out_hw": list(hw), "backend": backend, **extra, "label": label, "flex_variant": variant}
                        r["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                        results.append(r)
                        print(_row(r), flush=True)
                continue
            for hw in sizes:
                for backend, variant, kernel_options, flex_mode in runs:
                    attn_mod.set_flex_options(kernel_options, flex_mode)
                    try:
                        r = run_one(
                            cfg, up, hw, args.frames, backend, device, args.quick, args.mem_trace, args.lag, args.uint8
                        )
                        r["frames_dtype"] = "uint8" if args.uint8 else "float32"
                        if "tattn" in lever:  # registers and shared memory of our attention kernel
                            from streamvsr.models.flashvsr import block_kernels

                            r["attention_kernel"] = block_kernels.last_resources()
                            print(f"{lever}: our attention kernel {r['attention_kernel']}", flush=True)
                        if r.get("mem_trace"):
                            print_attribution(_label(backend, lever, variant), r["mem_trace"])
                        if args.profile > 0:
                            r["profile"] = profile_steady(up, hw, backend, device, args.profile)
                            _print_profile(_label(backend, lever, variant), r["profile"])
                        if args.host_profile > 0:
                            r["host_profile"] = host_profile_steady(up, hw, backend, device, args.host_profile)
                            print(r["host_profile"], flush=True)
                    except torch.OutOfMemoryError as e:  # report and go on
                        r = {"out_hw": list(hw), "backend": backend, "error": f"OOM: {str(e).splitlines()[0]}"}
                        torch.cuda.empty_cache()
                    except Exception as e:  # a lever's failure (e.g. a compile error) does not end the run
                        if lever == "none":
                            raise
                        traceback.print_exc()
                        r = {
                            "out_hw": list(hw),
                            "backend": backend,
                            "error": f"{type(e).__name__}: {e}".splitlines()[0],
                        }
                    r.update(
                        size=args.size,
                        dtype=str(next(up.dit.parameters()).dtype),
                        device=str(device),
                        decoder=args.decoder,
                        kv_layout=args.kv_layout,
                        label=_label(backend, lever, variant),
                        flex_variant=variant,
                        **extra,
                    )
                    results.append(r)
                    print(_row(r), flush=True)
    attn_mod.set_flex_options()  # back to PyTorch's defaults
    meta = {
        "build_s": build_s,
        "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
        "torch": torch.__version__,
        "argv": argv if argv is not None else sys.argv[1:],
        "levers": levers,
    }
    # table in the requested order: per output size and backend, the levers side by side
    order = [(tuple(hw), b, v, lv) for hw in sizes for b, v, _, _ in runs for lv in levers]
    key = {k: i for i, k in enumerate(order)}
    rows = [r for r in results if "check" not in r]
    rows.sort(
        key=lambda r: key.get(
            (tuple(r["out_hw"]), r["backend"], r.get("flex_variant", "default"), r.get("lever", "none")), len(key)
        )
    )
    print(_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    return results


def _fmt(x: object, spec: str) -> str:
    """format(x, spec), or a right-aligned '-' of the same width for None."""
    if x is None:
        width = spec.split(".")[0]
        return "-".rjust(int(width)) if width.isdigit() else "-"
    return format(x, spec)


def _row(r: dict) -> str:
    label = r.get("label", r["backend"])
    if "error" in r:
        return f"{r['out_hw'][0]}x{r['out_hw'][1]} {label}: {r['error']}"
    line = (
        f"{r['out_hw'][0]}x{r['out_hw'][1]} {label}: {r['fps']:.2f} FPS ({_fmt(r.get('steady_fps'), '.2f')} steady,"
        f" {_fmt(r.get('piped_fps'), '.2f')} piped),"
        f" call0 {_fmt(r['call0_s'], '.3f')} s,"
        f" steady chunk {_fmt(r['steady_chunk_s'], '.3f')} s, peak {_fmt(r['peak_mem_gb'], '.2f')} GiB,"
        f" DiT {_fmt(r['dit_tflops_per_s'], '.1f')} TFLOP/s,"
        f" host per push {_fmt(r.get('host_push_ms'), '.1f')} ms launching + {_fmt(r.get('host_wait_ms'), '.1f')} ms"
        " waiting;"
        f" a push alone {_fmt(r.get('launch_ms'), '.1f')} ms to launch,"
        f" {_fmt(r.get('push_alone_ms'), '.1f')} ms to finish"
    )
    if r.get("psnr_vs_bf16_db") is not None:
        line += f", PSNR vs plain {r['psnr_vs_bf16_db']:.2f} dB"
    return line


def _table(results: list[dict]) -> str:
    rows = [r for r in results if "check" not in r]
    bw = max([7, *(len(r.get("label", r["backend"])) for r in rows)])
    psnr = any(r.get("psnr_vs_bf16_db") is not None for r in rows)
    head = (
        f"{'output':>11} {'backend':>{bw}} {'FPS':>7} {'steady':>7} {'piped':>7} {'call0 s':>8} {'chunk s':>8} "
        f"{'DiT s':>7} {'dec s':>7} {'peak GiB':>8} {'TFLOP/s':>8}" + (f" {'PSNR dB':>8}" if psnr else "")
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        label = r.get("label", r["backend"])
        if "error" in r:
            lines.append(f"{r['out_hw'][0]}x{r['out_hw'][1]:<5} {label:>{bw}} {r['error']}")
            continue
        lines.append(
            f"{str(r['out_hw'][0]) + 'x' + str(r['out_hw'][1]):>11} {label:>{bw}} {r['fps']:7.2f} "
            f"{_fmt(r.get('steady_fps'), '7.2f')} {_fmt(r.get('piped_fps'), '7.2f')} "
            f"{_fmt(r['call0_s'], '8.3f')} {_fmt(r['steady_chunk_s'], '8.3f')} {_fmt(r['steady_dit_s'], '7.3f')} "
            f"{_fmt(r['steady_decode_s'], '7.3f')} {_fmt(r['peak_mem_gb'], '8.2f')} "
            f"{_fmt(r['dit_tflops_per_s'], '8.1f')}" + (f" {_fmt(r.get('psnr_vs_bf16_db'), '8.2f')}" if psnr else "")
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
