"""Streaming FlashVSR upscaler (x4): LR frames in, SR frames out as soon as they exist.

The bookkeeping follows the official Tiny-Long pipeline (spec §1.3, §1.9, §1.11.3), run incrementally:

* every LR frame is bicubic-upsampled x4 to the target grid and mapped to [-1, 1];
* the LQ projector gets frame 0 as a warm-up clip, then one clip per 4 frames (latent t <- frames
  4t+1 .. 4t+4);
* DiT call 0 runs once 25 frames exist (latents 0..5, bidirectional over 3 windows), then one call
  per 8 new frames (2 latents) with a KV cache of ``kv_windows`` windows; RoPE time index = latent
  index (unbounded);
* one step: x0 = eps - v at t = 1000; every chunk is decoded at once (TCDecoder with the aligned LR
  condition, or the Wan VAE decoder), colour-fixed against the bicubic LR and emitted in [0, 1].

Latent t decodes to output frames 4t-3 .. 4t (latent 0 to frame 0), so call 0 emits frames 0..20 and
call k >= 1 emits frames 8k+13 .. 8k+20. ``flush`` pads the tail with copies of the last frame up to
F = max(25, smallest 8n+1 >= N + 4) frames and runs the remaining calls, so every input frame gets an
output (the engine trims the extras).

Noise: ``noise="stream"`` (default) draws each chunk's noise from a generator seeded with ``seed`` at
the stream start; this differs from the official code, which draws the whole video's noise at once.
``noise="official"`` with a known ``num_frames`` reproduces the official draw: one ``torch.randn`` of
shape (1, 16, T, H/8, W/8) from a generator on the run's device seeded with ``seed``, in the model dtype
(T = 2n for the official F = largest 8n+1 <= N + 4; extra latents our longer tail padding needs are drawn
afterwards from the same generator). That tensor grows with the video (the only per-video state).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from streamvsr.errors import InputError, ModelError
from streamvsr.models.flashvsr.attention import (
    KVCache,
    SharedKVCache,
    get_flex_options,
    resolve_backend,
    set_flex_compiler,
    set_flex_options,
)
from streamvsr.models.flashvsr.config import AttentionConfig, FlashVSRConfig
from streamvsr.models.flashvsr.dit import DiTState, WanDiT
from streamvsr.models.flashvsr.layout import settle_size1_strides
from streamvsr.ops import frame_kernels
from streamvsr.ops.color import adain_color_fix, adain_stats, wavelet_color_fix
from streamvsr.pipeline.precompile import DiskCompiled
from streamvsr.pipeline.protocol import ModelSpec

__all__ = [
    "FIRST_LATENTS",
    "STEP_LATENTS",
    "ChunkInfo",
    "DENSE_MAX_BLOCKS",
    "FlashVSRUpscaler",
    "auto_attention_backend",
    "blocks_per_window",
    "call_schedule",
    "cpu_bf16_native",
    "default_dtype",
    "hopper_flex_options",
    "lookahead",
    "padded_frame_count",
    "pipeline_flex_options",
]

SCALE = 4
FIRST_LATENTS = 6  # latents of call 0 (3 temporal windows)
STEP_LATENTS = 2  # latents of every later call (1 window)
FRAMES_PER_LATENT = 4
MIN_FRAMES = 1 + FRAMES_PER_LATENT * FIRST_LATENTS  # 25 LR frames before the first output
KV_LAYOUTS = ("shared", "spare", "lean")  # FlashVSRUpscaler's kv_layout
# "auto" attention on CUDA: the exact masked-SDPA kernel up to this many 128-token blocks per temporal window,
# FlexAttention above. Our `fast` model on an H100 (docs/performance.md, evening of 2026-11-26): at 1280x720
# output (15 blocks) dense streams as fast as FlexAttention (207 against 192 piped FPS) and spares the ~15 s of
# compiling FlexAttention at the start of every run; at 1920x1080 (40 blocks) FlexAttention is 2.4x faster.
DENSE_MAX_BLOCKS = 16


# ----------------------------------------------------------------------------------------------
# Bookkeeping (pure functions)
# ----------------------------------------------------------------------------------------------


def blocks_per_window(latent_hw: tuple[int, int], patch: tuple[int, int, int], window: tuple[int, int, int]) -> int:
    """128-token attention blocks per temporal window of a (padded) latent frame of ``latent_hw`` (a grid that is
    not a multiple of the window is padded to whole windows inside the DiT)."""
    return -(-latent_hw[0] // patch[1] // window[1]) * -(-latent_hw[1] // patch[2] // window[2])


def auto_attention_backend(device: torch.device, blocks_per_window: int) -> str:
    """What ``backend="auto"`` runs for a stream: ``dense`` for small token grids (up to :data:`DENSE_MAX_BLOCKS`
    blocks per temporal window), else the model's own rule (:func:`~streamvsr.models.flashvsr.attention.
    resolve_backend`: compiled FlexAttention on CUDA, dense elsewhere)."""
    if blocks_per_window <= DENSE_MAX_BLOCKS:
        return "dense"
    return resolve_backend("auto", device)


@functools.cache
def cpu_bf16_native() -> bool:
    """Whether this CPU has bf16 arithmetic instructions that oneDNN uses (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def default_dtype(device: torch.device) -> torch.dtype:
    """The compute dtype of ``dtype=None`` (the CLI's ``--dtype auto``): bf16 on CUDA, and on CPUs with native bf16
    (our ``fast`` model at 1280x720 on 2 cores of the development machine: 4.44 against 2.35 FPS, the output 61.97
    dB from float32's in 8-bit PNGs; docs/performance.md, evening of 2026-11-26); float32 on other CPUs, where bf16
    is emulated."""
    if device.type == "cuda" or (device.type == "cpu" and cpu_bf16_native()):
        return torch.bfloat16
    return torch.float32


def padded_frame_count(n: int) -> int:
    """Frames after tail padding: F = max(25, smallest 8k+1 >= n + 4); gives F - 4 >= n outputs."""
    need = max(n + 4, MIN_FRAMES)
    step = FRAMES_PER_LATENT * STEP_LATENTS
    return -(-(need - 1) // step) * step + 1


def official_frame_count(n: int) -> int:
    """The official F: largest 8k+1 <= n + 4 (the official scripts lose up to 7 tail frames)."""
    step = FRAMES_PER_LATENT * STEP_LATENTS
    return (n + 4 - 1) // step * step + 1


@dataclass(frozen=True)
class _Call:
    a: int  # first latent
    b: int  # one past the last latent
    out_start: int  # first output frame
    out_end: int  # one past the last output frame
    need: int  # index of the last LR frame the call needs


def call_schedule(num_latents: int) -> list[_Call]:
    """DiT calls for ``num_latents`` (= 2n) latents: [0, 6), then [4+2k, 6+2k)."""
    calls = []
    a = 0
    while a < num_latents:
        b = a + (FIRST_LATENTS if a == 0 else STEP_LATENTS)
        if b > num_latents:
            break
        out_start = 0 if a == 0 else FRAMES_PER_LATENT * a - 3
        calls.append(_Call(a, b, out_start, FRAMES_PER_LATENT * b - 3, FRAMES_PER_LATENT * b))
        a = b
    return calls


def lookahead(num_latents: int = 64) -> tuple[int, int]:
    """(max, steady) look-ahead in frames: how far past an output frame's own index the input must go.

    The first call's frame 0 waits for frame 24 (max = 24); a steady call's first frame waits 11 frames.
    """
    calls = call_schedule(num_latents)
    worst = max(c.need - c.out_start for c in calls)
    steady = max(c.need - c.out_start for c in calls[1:]) if len(calls) > 1 else worst
    return worst, steady


class Compiled:
    """What :func:`compile_dit` / :func:`compile_decoder` / :func:`compile_lq_proj` replaced; :meth:`undo` restores
    the eager methods."""

    def __init__(self, patched: list[tuple[torch.nn.Module, str]]) -> None:
        self.patched = patched

    def undo(self) -> None:
        for module, name in self.patched:
            module.__dict__.pop(name, None)  # back to the class's method
        self.patched = []


def _compile_kw(mode: str | None, backend: str, n_copies: int) -> dict:
    import torch._dynamo

    # the same code runs for every copy (block): its guards must admit them all at 2 shapes without a limit hit
    cfg = torch._dynamo.config
    cfg.recompile_limit = max(cfg.recompile_limit, 2 * n_copies + 8)
    kw: dict = {"dynamic": False, "backend": backend}
    if mode is not None:
        kw["mode"] = mode
    return kw


def _compiled(fn: Callable, mode: str | None, kw: dict) -> Callable:
    """torch.compile ``fn``; under CUDA graphs (``reduce-overhead``) its outputs are cloned on return.

    A graph's outputs live in the graph's own memory, which its next replay overwrites. The 30 blocks replay one
    graph each (and the decoder's memories are read one call later), so every output is copied out first.
    """
    c = torch.compile(fn, **kw)
    if mode != "reduce-overhead":
        return c
    from torch.utils._pytree import tree_map

    def run(*args: Any, **kwargs: Any) -> Any:
        return tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, c(*args, **kwargs))

    return run


def _compiled_method(owner: torch.nn.Module, name: str, tag: str, mode: str | None, kw: dict) -> Callable:
    """torch.compile ``owner``'s method ``name`` (the class's, not an instance override) as a bound method: its
    graphs kept on disk across processes (:class:`~streamvsr.pipeline.precompile.DiskCompiled`, files named after
    ``tag``), except under CUDA graphs (``reduce-overhead``), which :func:`_compiled` wraps in memory."""
    func = getattr(type(owner), name)
    if mode == "reduce-overhead":
        return _compiled(func.__get__(owner), mode, kw)
    return DiskCompiled(func, owner, tag, kw)


def _flex_load_context() -> contextlib.AbstractContextManager:
    """A saved FlexAttention graph's guards ask for a tracing context while they load (PyTorch 2.13, CPU;
    docs/runs/2026-11-27n/flex_aot.py)."""
    from torch._guards import TracingContext, tracing
    from torch._subclasses.fake_tensor import FakeTensorMode

    return tracing(TracingContext(FakeTensorMode()))


def _flex_compiler(module: torch.nn.Module) -> Callable:
    """The hook of :func:`~streamvsr.models.flashvsr.attention.set_flex_compiler`: a FlexLists compiled with its
    graphs kept on disk, files named "flex"."""
    _, mode = get_flex_options()
    kw = {"dynamic": False} | ({"mode": mode} if mode else {})
    return DiskCompiled(type(module).forward, module, "flex", kw, load_context=_flex_load_context)


def flex_on_disk_default() -> bool:
    """Whether :func:`compile_dit` keeps FlexAttention's compiled graphs on disk: ``STREAMVSR_PRECOMPILE_FLEX=1``.
    Off by default until it has been measured on a GPU (it saves and loads on the CPU, PyTorch 2.13)."""
    return os.environ.get("STREAMVSR_PRECOMPILE_FLEX", "").lower() in ("1", "on", "yes", "true")


def keep_flex_on_disk(on: bool = True) -> None:
    """Compile the DiT's FlexAttention (inference calls) through :class:`DiskCompiled`, as a function of the block
    lists (:class:`~streamvsr.models.flashvsr.attention.FlexLists`), so that a later process loads its graphs
    instead of tracing them (about 4.7 s of a process's start under py-spy on an H100 host; docs/performance.md,
    session of 2026-11-28). ``on=False`` restores the built-in in-memory compile. Process-wide, as FlexAttention's
    compile is."""
    set_flex_compiler(_flex_compiler if on else None)


def compile_dit(
    dit: WanDiT, mode: str | None = None, backend: str = "inductor", flex_on_disk: bool | None = None
) -> Compiled:
    """torch.compile every DiT block's ``pre`` and ``post`` in place (``dynamic=False``).

    ``pre`` = modulated LayerNorm, q/k/v projections, RMSNorm, RoPE; ``post`` = output projection, residuals,
    cross-attention, FFN. The attention between them (block selection, KV cache, FlexAttention, itself
    compiled) stays as it is: its Python bookkeeping changes every call and would force recompiles. All
    blocks share one graph per function and input shape (the first call of a stream and the steady calls:
    four graphs in all). Measured on an H100 (random official-size weights): 26.2 -> 35.3 FPS at 768x1408
    (docs/performance.md). Returns a handle whose ``undo()`` restores the eager blocks.

    ``flex_on_disk``: also :func:`keep_flex_on_disk` (None: :func:`flex_on_disk_default`).
    """
    if flex_on_disk if flex_on_disk is not None else flex_on_disk_default():
        keep_flex_on_disk(True)
    kw = _compile_kw(mode, backend, len(dit.blocks))
    patched: list[tuple[torch.nn.Module, str]] = []
    for block in dit.blocks:
        block.pre = _compiled_method(block, "pre", "dit-pre", mode, kw)
        block.post = _compiled_method(block, "post", "dit-post", mode, kw)
        patched += [(block, "pre"), (block, "post")]
    return Compiled(patched)


def compile_decoder(decoder: torch.nn.Module, mode: str | None = None, backend: str = "inductor") -> Compiled:
    """torch.compile a TCDecoder's layer stack (``_run``: tensors and its memory dict in, tensors out).

    One graph. A stream's first pass has no memories, and a MemBlock without one reads zeros, so that pass gets
    zero memories laid out as the later passes' memories are: the same function, in the later passes' graph. The
    decoder's graph is the costliest to trace (about 3.7 s a process on an H100's host, more than all DiT graphs
    together; docs/performance.md, thirteenth session of 2026-11-27), and every process traces its graphs again.
    Until a process has seen a later pass (its first stream's first pass), the first pass runs eagerly. Measured
    on an H100 after :func:`compile_dit`: 35.3 -> 40.3 FPS at 768x1408, decode 0.062 -> 0.037 s per 8 frames.
    """
    if not hasattr(decoder, "_run") or not hasattr(decoder, "_mem"):
        raise ModelError("compile_decoder takes a TCDecoder")
    eager = decoder._run
    compiled = _compiled_method(decoder, "_run", "tcdecoder", mode, _compile_kw(mode, backend, 1))
    shapes: dict[tuple, list[tuple[int, torch.Size, torch.dtype]]] = {}  # input -> its memories (contiguous)

    def run(x: torch.Tensor, mem: dict[int, torch.Tensor] | None) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        key = (tuple(x.shape), x.dtype, x.device)
        if mem:  # TCDecoder.decode keeps them contiguous, so the graph sees one layout
            if key not in shapes:
                shapes[key] = [(i, m.shape, m.dtype) for i, m in mem.items()]
            return compiled(x, mem)
        if key not in shapes:
            return eager(x, mem)
        return compiled(x, {i: x.new_zeros(s, dtype=d) for i, s, d in shapes[key]})

    decoder._run = run
    return Compiled([(decoder, "_run")])


_FUSED_FINISH = True  # see set_fused_finish


def set_fused_finish(on: bool) -> None:
    """Whether :func:`finish_frames` runs its elementwise steps after the AdaIN statistics (or for "none") as one
    Triton kernel on CUDA (:func:`streamvsr.ops.frame_kernels.finish`, the same output bit for bit) instead of
    thirteen eager passes over the full-resolution frames, and the upscaler maps its bicubic frames to [-1, 1] in
    one pass too (:func:`streamvsr.ops.frame_kernels.signed`, the same values). On by default where Triton and CUDA
    are."""
    global _FUSED_FINISH
    _FUSED_FINISH = bool(on)


def get_fused_finish() -> bool:
    """See :func:`set_fused_finish`."""
    return _FUSED_FINISH


def finish_frames(sr: torch.Tensor, ref: torch.Tensor, color_fix: str, to_uint8: bool) -> torch.Tensor:
    """Decoded frames (T, 3, H, W) about [-1, 1] and their bicubic LR reference -> output frames: the colour fix
    ("adain", "wavelet" or "none": clamped to [-1, 1] only), then [0, 1] in float32, or with ``to_uint8`` 0..255
    rounded as ``run.to_array`` rounds float frames (x * 255 + 0.5, clamped, truncated)."""
    if _FUSED_FINISH and color_fix != "wavelet" and frame_kernels.available(sr):
        stats = adain_stats(sr, ref) if color_fix == "adain" else None
        return frame_kernels.finish(sr, stats, to_uint8)
    if color_fix == "none":
        out = sr.clamp(-1, 1)
    else:
        fn = adain_color_fix if color_fix == "adain" else wavelet_color_fix
        out = fn(sr, ref)
    out = out.float().add_(1).mul_(0.5).clamp_(0, 1)  # in place: the colour fix's output is a new tensor
    if to_uint8:
        out = out.mul_(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8)
    return out


def compile_lq_proj(lq_proj: torch.nn.Module, mode: str | None = None, backend: str = "inductor") -> Compiled:
    """torch.compile the LQ projector's later calls (``_steady``: frames and both caches in, tokens and the new
    caches out): the pixel unshuffle, both causal convolutions with their padding, the norms and activations
    and the token projection in one graph; the stream's first call stays eager. Its eager glue took about
    2.4 ms of a 768x1408 chunk on an H200 (docs/performance.md, third session of 2026-11-27)."""
    if not hasattr(lq_proj, "_steady"):
        raise ModelError("compile_lq_proj takes an LQProjector")
    compiled = _compiled_method(lq_proj, "_steady", "lq-projector", mode, _compile_kw(mode, backend, 1))

    def steady(
        frames: torch.Tensor, cache1: torch.Tensor, cache2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # one layout for the warm-up's caches and the graph's own (Inductor may return a cache as a view of a larger
        # buffer): a small copy, not a second graph
        c1, c2 = (settle_size1_strides(c.contiguous()) for c in (cache1, cache2))
        return compiled(frames, c1, c2)

    lq_proj._steady = steady
    return Compiled([(lq_proj, "_steady")])


@dataclass(frozen=True)
class ChunkInfo:
    """Per-call report for the ``on_chunk`` callback (seconds are wall time, CUDA-synchronised)."""

    index: int
    latents: tuple[int, int]
    frames: tuple[int, int]  # output frame indices [start, end)
    dit_s: float
    decode_s: float
    total_s: float


# ----------------------------------------------------------------------------------------------
# Upscaler
# ----------------------------------------------------------------------------------------------


def hopper_flex_options(head_dim: int) -> dict:
    """FlexAttention kernel options for a Hopper GPU (compute capability 9.x), each measured on an H100 in
    docs/performance.md: loading through TMA (+2 to 3% end to end; session of 2026-11-26, afternoon) and, for
    heads of 128 (the official size), 128 x 128 tiles with 8 warps and 3 pipeline stages (the attention
    kernel 6 to 8% faster, +2 to 3% end to end; session "kernels" of 2026-11-26). Three stages of 128 x 128 K and V
    tiles fill most of Hopper's shared memory, so the tiles are only chosen for the measured head size."""
    opts: dict = {"USE_TMA": True}
    if head_dim == 128:
        opts.update(BLOCK_M=128, BLOCK_N=128, num_warps=8, num_stages=3)
    return opts


def pipeline_flex_options(device: torch.device, head_dim: int) -> dict | None:
    """The FlexAttention options the upscaler chooses on ``device``: :func:`hopper_flex_options` on a Hopper GPU
    (compute capability 9.x), else None (PyTorch's own)."""
    if device.type == "cuda" and torch.cuda.get_device_capability(device)[0] == 9:
        return hopper_flex_options(head_dim)
    return None


_AUTO_FLEX: dict | None = None  # the FlexAttention options _cuda_fast_paths set last (not a caller's choice)


def _cuda_fast_paths(dit: WanDiT, lq_proj: torch.nn.Module, device: torch.device, head_dim: int) -> None:
    """Speed choices on CUDA, each measured in docs/performance.md: the projector's Conv3d layers as one Conv2d
    each (cuDNN's Hopper kernels; +5%; session of 2026-11-26, afternoon); in bf16/fp16 the FFN's first linear with
    its GELU in the GEMM's epilogue (:func:`~streamvsr.models.flashvsr.fused.fuse_ffn_gelu`; +1.6 to 1.9% piped on
    an H200, 2026-11-27; rounded once instead of twice) and RoPE's math in float32 (:attr:`WanDiT.rope_fp32_for_half`:
    q and k are rounded to 16 bits afterwards; with RoPE as one expression the compiled projection step took 0.315
    instead of 0.385 ms per layer at 768x1408 on an H100, +1.1% and +1.4% piped at 768x1408 and 1080p, fifth session
    of 2026-11-27); and the FlexAttention
    options of :func:`pipeline_flex_options`, unless the caller chose the process's FlexAttention options itself
    (:func:`~streamvsr.models.flashvsr.attention.set_flex_options`). Options that an earlier upscaler of the
    process chose are replaced (the options are per process, the best tiles per head size)."""
    global _AUTO_FLEX
    from streamvsr.models.flashvsr.fused import fuse_ffn_gelu

    lq_proj.time_fold = True
    if next(dit.parameters()).dtype in (torch.bfloat16, torch.float16):
        fuse_ffn_gelu(dit)
        dit.rope_fp32_for_half = True
    opts = pipeline_flex_options(device, head_dim)
    current = get_flex_options()
    ours = current == (None, None) or (current[1] is None and current[0] == _AUTO_FLEX)
    if opts is not None and ours:
        if current[0] != opts:
            set_flex_options(opts)  # also drops the compiled kernel, which is rebuilt with these options
        _AUTO_FLEX = opts


def _tail_kernels(decoder: torch.nn.Module) -> bool:
    """Turn on the TCDecoder's fused inference kernels (for CUDA in bf16/fp16; the same function): every
    convolution + ReLU pair of the layer stack and of the MemBlocks as one cuDNN op with the ReLU in its epilogue,
    the 3-channel output convolution as a GEMM plus a shifted sum, and every nearest x2 upsampling with the 3x3
    convolution after it as one sub-pixel convolution (:mod:`~streamvsr.models.flashvsr.fused`).
    Only for decoders of the official width (at least 64 channels at full resolution), where they were measured: on
    an H100 the first three took the piped rate from 55.24 to 56.93 FPS at 768x1408 and from 27.25 to 28.06 at
    1080p (docs/performance.md, fourth session of 2026-11-27); the sub-pixel upsampling from 58.25 to 58.81 and
    from 28.66 to 29.14 (seventh session). Narrow decoders (our default model's 12 channels) keep the reference
    layers. Returns whether they were turned on."""
    cfg = getattr(decoder, "cfg", None)
    if not hasattr(decoder, "fused_conv_relu") or cfg is None or cfg.channels[-1] < 64:
        return False
    decoder.fused_conv_relu = decoder.fused_memblocks = decoder.out_by_taps = decoder.subpixel_upsample = True
    return True


class FlashVSRUpscaler:
    """FlashVSR as a :class:`~streamvsr.pipeline.protocol.StreamingModel` (x4).

    dit, lq_proj, decoder: the modules on the run's device/dtype (decoder = ``TCDecoder`` or
    ``WanVAEDecoder``). context: the fixed prompt tensor (1, text_len, text_dim) for models without a
    learned context (official: ``posi_prompt.pth``). color_fix: "adain" | "wavelet" | "none".
    lq_upsample: "torch" (bicubic a=-0.75 on floats, default) | "pillow" (official: Pillow bicubic on
    uint8-quantised frames, on the CPU). on_chunk: called with a :class:`ChunkInfo` after every call.
    kv_layout: the KV cache's layout. "shared" (default): all layers' windows in one ring with a single free
    slot (:class:`~streamvsr.models.flashvsr.attention.SharedKVCache`): each steady step attends over one key
    tensor, at the memory of the lean layout plus one window of one layer. "spare": a ring per layer with a
    spare window slot (the same one-piece attention, one more window of every layer). "lean": a ring per
    layer without it; FlexAttention runs over (ring, new window) and merges the two (see
    :class:`~streamvsr.models.flashvsr.attention.KVCache`).
    detail: how much of the DiT's synthesised detail reaches the output, in [0, 2] (ours, not the paper's).
    The predicted latents are scaled toward zero, the mean of the normalised latent space, before the
    TCDecoder (which also sees the LR frames) decodes them: 1 = the model as trained; 0 = the decoder's
    LR-conditioned reconstruction alone (higher PSNR, less texture). Needs a conditional decoder.
    streams: on CUDA, run the upsampling, LQ projector and DiT on one stream of the upscaler's own and the
    decoder on a second, so that chunk n is decoded while the DiT already works on chunk n + 1 (when the
    caller pushes again before it reads chunk n back). ``push`` then also takes host frames (the spec's
    ``host_input``) and copies them on the first stream. The outputs are the same; each is ready on the
    caller's current stream when ``push`` returns it. Ignored off CUDA.
    stream_priority: with streams, which one the GPU serves first: "work" (default), "decode" or "none". With the
    DiT's stream first, the decoder's kernels fill the SMs that the DiT's narrow kernels (the top-k, the norms, the
    attention's last wave) leave idle: on an H100 the piped rate (a caller reading outputs back two pushes later,
    241 frames) went from 56.51 to 57.31 FPS at 768x1408 and from 27.74 to 28.02 at 1080p (docs/performance.md,
    fifth session of 2026-11-27).
    """

    def __init__(
        self,
        dit: WanDiT,
        lq_proj: torch.nn.Module,
        decoder: torch.nn.Module,
        cfg: FlashVSRConfig,
        *,
        context: torch.Tensor | None = None,
        attention: AttentionConfig | None = None,
        color_fix: str = "adain",
        lq_upsample: str = "torch",
        noise: str = "stream",
        seed: int = 0,
        num_frames: int | None = None,
        on_chunk: Callable[[ChunkInfo], None] | None = None,
        kv_layout: str = "shared",
        detail: float = 1.0,
        streams: bool = False,
        stream_priority: str = "work",
        pad_to: str = "tokens",
        name: str = "flashvsr",
    ):
        if color_fix not in ("adain", "wavelet", "none"):
            raise ModelError(f"color_fix must be adain, wavelet or none, not {color_fix!r}")
        if lq_upsample not in ("torch", "pillow"):
            raise ModelError(f"lq_upsample must be torch or pillow, not {lq_upsample!r}")
        if kv_layout not in KV_LAYOUTS:
            raise ModelError(f"kv_layout must be one of {', '.join(KV_LAYOUTS)}, not {kv_layout!r}")
        if noise not in ("stream", "official"):
            raise ModelError(f"noise must be stream or official, not {noise!r}")
        if noise == "official" and num_frames is None:
            raise ModelError('noise="official" needs the number of frames (num_frames) up front')
        if not 0.0 <= detail <= 2.0:  # also refuses NaN
            raise ModelError(f"detail must be in [0, 2], got {detail}")
        if not cfg.dit.learned_context and context is None:
            raise ModelError("this FlashVSR model needs its prompt context tensor (posi_prompt.pth)")
        self.dit = dit
        self.lq_proj = lq_proj
        self.decoder = decoder
        self.cfg = cfg
        self.attention = attention or cfg.attention
        self.context = context
        self.color_fix = color_fix
        self.lq_upsample = lq_upsample
        self.noise = noise
        self.seed = seed
        self.num_frames = num_frames
        self.on_chunk = on_chunk
        self.kv_layout = kv_layout  # takes effect at the stream's reset
        self.kv_pieces = True  # a full lean cache hands out (ring, new) pieces to FlexAttention, no copy
        self.uses_cond = getattr(getattr(decoder, "cfg", None), "cond_channels", 0) > 0
        if detail != 1.0 and not self.uses_cond:
            raise ModelError("detail needs a decoder that sees the LR frames (the TCDecoder, not the Wan VAE)")
        self.detail = detail
        p = next(dit.parameters())
        self.device, self.dtype = p.device, p.dtype
        # The bicubic frames are kept in float16 rather than bf16 where the decoder adds its output to them
        # (lq_residual, our models): the output is mostly those frames, and bf16's 8-bit mantissa put it on a grid
        # of up to one grey level whose rounding changed from frame to frame (tOF 0.773 against 0.742 in float32).
        lq_residual = bool(getattr(getattr(decoder, "cfg", None), "lq_residual", False))
        self.hr_dtype = torch.float16 if (self.dtype == torch.bfloat16 and lq_residual) else self.dtype
        # official LQ upsampling: Pillow on a CPU run, the bit-exact tensor version on an accelerator (on an
        # H100 the CPU round trip cost about 30 ms per frame, half the end-to-end speed at 1408x768)
        self.pillow_on_device = self.device.type != "cpu"
        if hasattr(decoder, "tail_frames"):
            # the TCDecoder's full-resolution tail one frame at a time (the same function): on an H200 the bf16
            # peak at 768x1408 went from 11.46 to 10.18 GiB at the same speed, and on 2 CPU cores the decoder
            # took 0.75 instead of 1.04 s per 8 frames at 1280x768 (docs/performance.md, 2026-11-27)
            decoder.tail_frames = 1
        if self.device.type == "cuda" and self.dtype in (torch.bfloat16, torch.float16):
            _tail_kernels(decoder)
        if self.device.type == "cpu":
            # oneDNN picks faster NHWC kernels for channels-last conv weights: the TCDecoder, 70% of the CPU
            # time, went from 3.40 to 2.84 s per 8 frames at 1280x720 on 2 cores (same output within 2e-6)
            decoder.to(memory_format=torch.channels_last)
        if self.device.type == "cuda":
            _cuda_fast_paths(dit, lq_proj, self.device, cfg.dit.head_dim)
        self._streams: tuple[torch.cuda.Stream, torch.cuda.Stream] | None = None  # (work, decode)
        self._stream_priority = "none"
        self.stream_priority = stream_priority
        self.max_lookahead, self.steady_lookahead = lookahead()
        dtypes = (torch.bfloat16, torch.float16, torch.float32) if self.device.type == "cuda" else (torch.float32,)
        if self.device.type == "cpu" and cpu_bf16_native():
            dtypes = (torch.bfloat16, torch.float32)
        # uint8_io: 8-bit video arrives as integers (4x fewer bytes to the device, no float conversion on the host;
        # the official upsampling works on uint8 anyway) and leaves rounded to uint8 on the device
        self.spec = ModelSpec(
            name=name,
            scale=SCALE,
            latency=self.max_lookahead,
            multiple=1,  # set by pad_to below
            dtypes=dtypes,
            uint8_io=True,
        )
        self._state: DiTState | None = None
        self.streams = streams
        self.pad_to = pad_to
        self.reset()

    @property
    def stream_priority(self) -> str:
        """Which of the two CUDA streams the GPU's block scheduler serves first: "work" (the DiT's), "decode"
        or "none" (equal). Takes effect when the streams are made (``streams = True``)."""
        return self._stream_priority

    @stream_priority.setter
    def stream_priority(self, which: str) -> None:
        if which not in ("work", "decode", "none"):
            raise ModelError(f"stream_priority must be work, decode or none, not {which!r}")
        changed = which != self._stream_priority
        self._stream_priority = which
        if changed and self._streams is not None:
            self._streams = self._new_streams()

    def _new_streams(self) -> tuple[torch.cuda.Stream, torch.cuda.Stream]:
        high = -8  # lower is higher; CUDA maps it to its highest priority
        pw = high if self._stream_priority == "work" else 0
        pd = high if self._stream_priority == "decode" else 0
        return torch.cuda.Stream(self.device, priority=pw), torch.cuda.Stream(self.device, priority=pd)

    @property
    def pad_to(self) -> str:
        """How far the engine pads the LR frames (bottom and right, by reflection; the output is cropped back):
        "tokens" (the default) to whole DiT tokens (16 output pixels for the official models, 32 for our ``fast``
        size), and the DiT pads its token grid to whole attention windows itself, running the per-token work on
        the real tokens only (see :func:`~streamvsr.models.flashvsr.attention.window_fill`); "windows" to whole
        attention windows (8 x 8 tokens, 128 output pixels for the official models; all sessions before the ninth
        of 2026-11-27), so that the DiT, the projector and the decoder compute the padding as image. At 1920x1080
        the two run 1088 and 1152 rows. Set it between streams."""
        return self._pad_to

    @pad_to.setter
    def pad_to(self, which: str) -> None:
        if which not in ("tokens", "windows"):
            raise ModelError(f"pad_to must be tokens or windows, not {which!r}")
        token_px = self.cfg.latent_scale * self.cfg.dit.patch[1]  # 16
        px = token_px * (self.attention.window[1] if which == "windows" else 1)
        self._pad_to = which
        self.spec = dataclasses.replace(self.spec, multiple=px // SCALE)

    @property
    def streams(self) -> bool:
        """Whether the upscaler runs on its own (work, decode) CUDA streams (see the class docstring)."""
        return self._streams is not None

    @streams.setter
    def streams(self, on: bool) -> None:
        """Switch the streams on or off (off CUDA: always off); call between streams (after flush/reset)."""
        on = bool(on) and self.device.type == "cuda"
        if on != self.streams:
            self._streams = self._new_streams() if on else None
        self.spec = dataclasses.replace(self.spec, host_input=on)

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        cfg: FlashVSRConfig,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        decoder: str = "tc",
        init_seed: int | None = 0,
        **kwargs: object,
    ) -> FlashVSRUpscaler:
        """Randomly initialised modules of ``cfg`` (tests, benchmarks, training starts).

        init_seed seeds the weight init (global RNG); ``kwargs`` go to the constructor (``seed`` = noise seed).
        """
        from streamvsr.models.flashvsr.lq_proj import LQProjector
        from streamvsr.models.flashvsr.tcdecoder import TCDecoder
        from streamvsr.models.flashvsr.wan_vae import WanVAEDecoder

        device = torch.device(device)
        dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
        if init_seed is not None:
            torch.manual_seed(init_seed)
        if decoder == "tc" and cfg.decoder is None:
            raise ModelError("this config has no TCDecoder")
        if decoder == "vae" and cfg.vae is None:
            raise ModelError("this config has no Wan VAE decoder")
        if decoder not in ("tc", "vae"):
            raise ModelError(f"decoder must be tc or vae, not {decoder!r}")
        with torch.device(device):  # initialise in place (fast on CUDA for the official size)
            dec = TCDecoder(cfg.decoder) if decoder == "tc" else WanVAEDecoder(cfg.vae)  # type: ignore[arg-type]
            mods = [WanDiT(cfg.dit), LQProjector(cfg.lq_proj), dec]
        dit, lq, dec = (m.to(device=device, dtype=dtype).eval() for m in mods)
        return cls(dit, lq, dec, cfg, **kwargs)  # type: ignore[arg-type]

    # -- protocol ------------------------------------------------------------------------------

    def reset(self) -> None:
        """Drop all stream state (KV cache, projector/decoder memories, buffers, noise)."""
        layers, windows = self.cfg.dit.num_layers, self.attention.kv_windows
        if self.kv_layout == "shared":
            self.kv: KVCache | SharedKVCache = SharedKVCache(layers, windows, self.kv_pieces)
        else:
            self.kv = KVCache(layers, windows, self.kv_layout == "spare", self.kv_pieces)
        self.lq_proj.reset()
        self.decoder.reset()
        self._n_in = 0  # real frames received
        self._hr: dict[int, torch.Tensor] = {}  # frame index -> (3, H, W) upsampled LR in [-1, 1]
        self._last_hr: torch.Tensor | None = None
        self._lq: dict[int, torch.Tensor] = {}  # latent index -> (1, h*w, dim) LQ tokens
        self._warm = False
        self._next_clip = 0  # next LQ clip (latent) index
        self._call_index = 0
        self._next_latent = 0
        self._size: tuple[int, int] | None = None  # LR (h, w)
        self._gen: torch.Generator | None = None
        self._noise: torch.Tensor | None = None  # official whole-video noise
        self._state = None  # time embedding + cross-attention K/V, recomputed per stream (cheap)
        self._uint8: bool | None = None  # the stream's frames are torch.uint8 (then so are its outputs)

    @torch.inference_mode()
    def push(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise InputError(f"expected (T, 3, H, W) frames, got {tuple(frames.shape)}")
        if frames.shape[0] == 0:
            return self._empty()
        h, w = frames.shape[-2:]
        m = self.spec.multiple
        if h % m or w % m:
            raise InputError(f"FlashVSR needs input sizes that are multiples of {m}, got {w}x{h} (pad first)")
        u8 = frames.dtype == torch.uint8
        if self._uint8 is None:
            self._uint8 = u8
        elif self._uint8 != u8:
            raise InputError(f"frame dtype changed mid-stream: got {frames.dtype}")
        if self._size is None:
            self._size = (h, w)
        elif self._size != (h, w):
            raise InputError(f"frame size changed mid-stream: {self._size[1]}x{self._size[0]} -> {w}x{h}")
        if self.noise == "official" and self._n_in + frames.shape[0] > self.num_frames:  # type: ignore[operator]
            raise InputError(f'noise="official" was set up for {self.num_frames} frames; more were pushed')
        with self._on_work(frames):
            if frames.device.type == "cpu" and self._streams is not None:  # no host sync: pinned, async
                frames = frames.contiguous().pin_memory().to(self.device, non_blocking=True)
            up = self._upsample(frames)
            for i in range(up.shape[0]):
                self._hr[self._n_in + i] = up[i]
            self._n_in += up.shape[0]
            self._last_hr = up[-1]
            out = self._advance(self._n_in)
        return self._hand_over(out)

    @torch.inference_mode()
    def flush(self) -> torch.Tensor:
        if self._n_in == 0:
            self.reset()
            return self._empty()
        total = padded_frame_count(self._n_in)
        with self._on_work(None):
            for i in range(self._n_in, total):
                self._hr[i] = self._last_hr  # type: ignore[assignment]
            out = self._advance(total)
        out = self._hand_over(out)
        self.reset()
        return out

    # -- internals -----------------------------------------------------------------------------

    def _on_work(self, frames: torch.Tensor | None) -> contextlib.AbstractContextManager:
        """The work stream's context (a no-op without streams). Device frames made on the caller's stream
        are waited for; host frames are not (that wait would queue behind the caller's earlier work)."""
        if self._streams is None:
            return contextlib.nullcontext()
        work = self._streams[0]
        if frames is not None and frames.device.type != "cpu":
            work.wait_stream(torch.cuda.current_stream(self.device))
        return torch.cuda.stream(work)

    def _on_decode(self, *tensors: torch.Tensor) -> contextlib.AbstractContextManager:
        """The decode stream's context, after the work stream's work so far; ``tensors`` (made on the work
        stream) are marked as used there, so the allocator does not hand their memory out too early."""
        if self._streams is None:
            return contextlib.nullcontext()
        work, dec = self._streams
        dec.wait_stream(work)
        for t in tensors:
            t.record_stream(dec)
        return torch.cuda.stream(dec)

    def _hand_over(self, out: torch.Tensor) -> torch.Tensor:
        """Make ``out`` (from the decode stream) safe to use on the caller's current stream."""
        if self._streams is None:
            return out
        cur = torch.cuda.current_stream(self.device)
        cur.wait_stream(self._streams[1])
        out.record_stream(cur)
        return out

    def _empty(self) -> torch.Tensor:
        dtype = torch.uint8 if self._uint8 else None
        if self._size is None:
            return torch.empty(0, 3, 0, 0, device=self.device, dtype=dtype)
        h, w = self._size
        return torch.empty(0, 3, h * SCALE, w * SCALE, device=self.device, dtype=dtype)

    def _upsample(self, frames: torch.Tensor) -> torch.Tensor:
        """(T, 3, h, w) [0, 1] (or uint8 0..255) -> (T, 3, 4h, 4w) in [-1, 1], ``hr_dtype``, on the run's device."""
        integer = frames.dtype == torch.uint8
        if self.lq_upsample == "pillow":
            from streamvsr.ops.resize import pillow_bicubic_uint8, resize_pillow_bicubic

            size = (frames.shape[-2] * SCALE, frames.shape[-1] * SCALE)
            dev = self.device if self.pillow_on_device else torch.device("cpu")
            if integer:
                u8 = frames.detach().to(dev)
            else:
                u8 = frames.detach().to(dev).float().clamp(0, 1).mul(255).round().to(torch.uint8)
            if self.pillow_on_device:  # bit-exact integer version on the GPU: no CPU round trip
                x = pillow_bicubic_uint8(u8, size).float().div(255.0)
            else:  # Pillow itself (faster than the tensor version on a CPU)
                u8 = u8.permute(0, 2, 3, 1).numpy()
                up = np.stack([resize_pillow_bicubic(np.ascontiguousarray(f), size) for f in u8])
                x = torch.from_numpy(up).permute(0, 3, 1, 2).float().div(255.0).to(self.device)
        else:
            x = frames.to(self.device)
            x = x.float().mul_(1.0 / 255) if integer else x.to(torch.float32)  # as run.to_tensor scales 8-bit video
            x = F.interpolate(x, scale_factor=SCALE, mode="bicubic")
            if _FUSED_FINISH and frame_kernels.available(x):  # clamp, [-1, 1] and hr_dtype in one pass
                return frame_kernels.signed(x, self.hr_dtype)
            x = x.clamp(0, 1)
        return (x * 2 - 1).to(self.hr_dtype)

    def _frames(self, a: int, b: int) -> torch.Tensor:
        """Upsampled frames a .. b-1 as (1, 3, b-a, H, W)."""
        return torch.stack([self._hr[i] for i in range(a, b)], dim=1)[None]

    def _feed_lq(self, available: int) -> None:
        """Feed every complete LQ clip among the first ``available`` frames to the projector."""
        if not self._warm:
            if available < 1:
                return
            self.lq_proj.step(self._frames(0, 1).to(self.dtype))
            self._warm = True
        c0 = self._next_clip
        n = max(0, (available - 1) // FRAMES_PER_LATENT - c0)  # complete clips not yet fed
        if n == 0:
            return
        for c in range(c0, c0 + n):  # one clip a call: one shape, one compiled graph (a flush adds several)
            first = FRAMES_PER_LATENT * c + 1
            self._lq[c] = self.lq_proj.step(self._frames(first, first + FRAMES_PER_LATENT).to(self.dtype))
        self._next_clip = c0 + n

    def _draw_noise(self, a: int, b: int, shape: tuple[int, int]) -> torch.Tensor:
        """(1, 16, b-a, H8, W8) noise for latents a .. b-1."""
        ch = self.cfg.dit.in_channels
        if self._gen is None:
            self._gen = torch.Generator(device=self.device)
            self._gen.manual_seed(self.seed)
        if self.noise == "stream":
            return torch.randn((1, ch, b - a, *shape), generator=self._gen, device=self.device, dtype=self.dtype)
        if self._noise is None:
            n = self.num_frames or 0
            ours = (padded_frame_count(n) - 1) // FRAMES_PER_LATENT
            off = (official_frame_count(n) - 1) // FRAMES_PER_LATENT
            off = off if off >= FIRST_LATENTS else ours
            parts = [torch.randn((1, ch, off, *shape), generator=self._gen, device=self.device, dtype=self.dtype)]
            if ours > off:
                extra = torch.randn(
                    (1, ch, ours - off, *shape), generator=self._gen, device=self.device, dtype=self.dtype
                )
                parts.append(extra)
            self._noise = torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]
        if b > self._noise.shape[2]:
            raise InputError(f'noise="official" was set up for {self.num_frames} frames; more were pushed')
        return self._noise[:, :, a:b]

    def _sync(self) -> None:
        if self.on_chunk is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _advance(self, available: int) -> torch.Tensor:
        """Run every DiT call whose LR frames (indices < ``available``) exist; return new output frames."""
        self._feed_lq(available)
        outs = []
        while True:
            a = self._next_latent
            b = a + (FIRST_LATENTS if a == 0 else STEP_LATENTS)
            if FRAMES_PER_LATENT * b >= available:  # the call needs frame 4b
                break
            outs.append(self._call(a, b))
            self._next_latent = b
        if not outs:
            return self._empty()
        if len(outs) == 1:
            return outs[0]
        with self._on_decode():
            return torch.cat(outs)

    def _call(self, a: int, b: int) -> torch.Tensor:
        self._sync()
        t0 = time.perf_counter()
        if self._state is None:
            ctx = None if self.context is None else self.context.to(self.device)
            self._state = self.dit.prepare(ctx, 1000.0)
        H, W = self._last_hr.shape[-2:]  # type: ignore[union-attr]
        lat = (H // self.cfg.latent_scale, W // self.cfg.latent_scale)
        x = self._draw_noise(a, b, lat)
        lq = torch.cat([self._lq.pop(i) for i in range(a, b)], dim=1)
        pos = torch.arange(a, b, device=self.device)
        attn = self.attention
        if attn.backend == "auto":  # decided per frame size (see auto_attention_backend)
            blocks = blocks_per_window(lat, self.cfg.dit.patch, attn.window)
            attn = dataclasses.replace(attn, backend=auto_attention_backend(self.device, blocks))
        v = self.dit.forward_chunk(x, lq, t_positions=pos, kv_cache=self.kv, attn=attn, state=self._state)
        x0 = x - v  # one Euler step from sigma = 1
        if self.detail != 1.0:
            x0 = x0 * self.detail  # toward the latent mean: less synthesised detail (see the class docstring)
        self._sync()
        t1 = time.perf_counter()
        s = 0 if a == 0 else FRAMES_PER_LATENT * a - 3
        e = FRAMES_PER_LATENT * b - 3
        ref = self._frames(s, e)  # (1, 3, n, H, W) bicubic LR of the output frames
        with self._on_decode(x0, ref):
            if self.uses_cond:
                out = self.decoder.decode(x0, ref)
            else:
                out = self.decoder.decode(x0)
            out = out[0].transpose(0, 1)  # (n, 3, H, W)
            if out.shape[0] != e - s:
                raise RuntimeError(f"decoder returned {out.shape[0]} frames for output frames {s}..{e - 1}")
            out = finish_frames(out, ref[0].transpose(0, 1), self.color_fix, bool(self._uint8))
        for i in range(s, e):  # these frames are not needed any more
            self._hr.pop(i, None)
        self._sync()
        t2 = time.perf_counter()
        if self.on_chunk is not None:
            self.on_chunk(ChunkInfo(self._call_index, (a, b), (s, e), t1 - t0, t2 - t1, t2 - t0))
        self._call_index += 1
        return out
