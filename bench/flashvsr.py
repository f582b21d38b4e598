"""FlashVSR streaming benchmark (random weights): FPS, per-chunk latency, peak memory, TFLOP/s.

Runs the full streaming upscaler (LQ projector + DiT with LCSA + TCDecoder + colour fix) through the
engine, once per (output size, attention backend), after an untimed warm-up run of the same size
(FlexAttention compiles there). TFLOP/s counts useful DiT work: linear layers, cross-attention and the
selected 128x128 block pairs of the self-attention (counted on the device, no sync), divided by the DiT
time of the timed run.

    python bench/flashvsr.py                                   # official-1.3b, bf16, CUDA
    python bench/flashvsr.py --size tiny --device cpu --sizes 128x128 --frames 9 --backends dense
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from streamvsr.models.flashvsr import attention as attn_mod
from streamvsr.models.flashvsr.config import SIZES, AttentionConfig
from streamvsr.pipeline.engine import Engine
from streamvsr.pipeline.flashvsr import ChunkInfo, FlashVSRUpscaler, padded_frame_count


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
        self.total: torch.Tensor | None = None

    def __enter__(self) -> _BlockCounter:
        def counting(*a, **k):  # noqa: ANN002, ANN003, ANN202
            m = self.orig(*a, **k)
            s = m.sum()
            self.total = s if self.total is None else self.total + s
            return m

        attn_mod.select_blocks = counting
        return self

    def __exit__(self, *exc: object) -> None:
        attn_mod.select_blocks = self.orig

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
) -> dict:
    h, w = out_hw
    lr = torch.rand(frames, 3, math.ceil(h / 4), math.ceil(w / 4))  # on the host, streamed in chunks
    upscaler.attention = AttentionConfig(**{**cfg.attention.__dict__, "backend": backend})
    chunks: list[ChunkInfo] = []
    engine = Engine(upscaler, device=device)

    def once(x: torch.Tensor, record: bool) -> tuple[float, dict]:
        """Stream x through the engine; outputs are checked and dropped (memory stays bounded)."""
        upscaler.on_chunk = chunks.append if record else None
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        n_out, finite, hw = 0, torch.ones((), dtype=torch.bool, device=device), None

        def stream():  # noqa: ANN202 - one chunk at a time, then the flush
            for i in range(0, x.shape[0], 8):
                yield engine.push(x[i : i + 8])
            yield engine.flush()

        for out in stream():
            n_out += out.shape[0]
            finite &= torch.isfinite(out).all()
            hw = tuple(out.shape[-2:])
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0, {"frames_out": n_out, "finite": bool(finite), "hw": hw}

    if not quick:
        once(lr[: min(frames, 33)], record=False)  # warm-up: compiles call-0 and steady shapes
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with _BlockCounter() as counter:
        seconds, out = once(lr, record=quick)
    if not quick:  # per-chunk timings in a second pass (syncing per chunk perturbs the overlap slightly)
        once(lr, record=True)
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
        "steady_dit_s": sum(c.dit_s for c in steady) / len(steady) if steady else None,
        "steady_decode_s": sum(c.decode_s for c in steady) / len(steady) if steady else None,
        "chunks": [{**c.__dict__, "latents": list(c.latents), "frames": list(c.frames)} for c in chunks],
        "peak_mem_gb": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
        "selected_block_pairs": pairs,
        "dit_tflop": flops / 1e12,
        "dit_tflops_per_s": flops / 1e12 / dit_s if dit_s else None,
        "finite": out["finite"],
        "frames_out": out["frames_out"],
    }


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


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="official-1.3b", choices=sorted(SIZES))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default=None, choices=["bf16", "fp16", "fp32"])
    p.add_argument("--sizes", default="768x1408,1080x1920", help="output sizes HxW, comma-separated")
    p.add_argument("--frames", type=int, default=57)
    p.add_argument("--backends", default="flex,dense")
    p.add_argument("--decoder", default="tc", choices=["tc", "vae"])
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    p.add_argument("--kv-lean", action="store_true", help="KV cache without the spare window slot")
    p.add_argument("--check", action="store_true", help="first compare flex and dense on one DiT call")
    p.add_argument("--quick", action="store_true", help="one pass: no warm-up, chunk timings in the timed run")
    args = p.parse_args(argv)

    device = torch.device(args.device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32, None: None}[args.dtype]
    cfg = SIZES[args.size]
    t0 = time.perf_counter()
    context = None
    if not cfg.dit.learned_context:  # a random stand-in for the official prompt tensor
        context = torch.randn(1, cfg.dit.text_len, cfg.dit.text_dim, device=device)
    up = FlashVSRUpscaler.from_config(
        cfg, device=device, dtype=dtype, decoder=args.decoder, context=context, kv_spare_slot=not args.kv_lean
    )
    build_s = time.perf_counter() - t0
    results = []
    with torch.inference_mode():
        if args.check:
            for hw in _parse_sizes(args.sizes):
                c = check_backends(up, hw)
                print(f"check flex vs dense at {c['out_hw']}: {c}", flush=True)
                results.append({"check": c})
        for hw in _parse_sizes(args.sizes):
            for backend in args.backends.split(","):
                try:
                    r = run_one(cfg, up, hw, args.frames, backend, device, args.quick)
                except torch.OutOfMemoryError as e:  # report and go on
                    r = {"out_hw": list(hw), "backend": backend, "error": f"OOM: {str(e).splitlines()[0]}"}
                    torch.cuda.empty_cache()
                r.update(
                    size=args.size,
                    dtype=str(next(up.dit.parameters()).dtype),
                    device=str(device),
                    decoder=args.decoder,
                    kv_spare_slot=not args.kv_lean,
                )
                results.append(r)
                print(_row(r), flush=True)
    meta = {
        "build_s": build_s,
        "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
        "torch": torch.__version__,
        "argv": argv if argv is not None else sys.argv[1:],
    }
    print(_table(results))
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
    if "error" in r:
        return f"{r['out_hw'][0]}x{r['out_hw'][1]} {r['backend']}: {r['error']}"
    return (
        f"{r['out_hw'][0]}x{r['out_hw'][1]} {r['backend']}: {r['fps']:.2f} FPS, call0 {_fmt(r['call0_s'], '.3f')} s,"
        f" steady chunk {_fmt(r['steady_chunk_s'], '.3f')} s, peak {_fmt(r['peak_mem_gb'], '.2f')} GiB,"
        f" DiT {_fmt(r['dit_tflops_per_s'], '.1f')} TFLOP/s"
    )


def _table(results: list[dict]) -> str:
    head = (
        f"{'output':>11} {'backend':>7} {'FPS':>7} {'call0 s':>8} {'chunk s':>8} {'DiT s':>7} "
        f"{'dec s':>7} {'peak GiB':>8} {'TFLOP/s':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        if "check" in r:
            continue
        if "error" in r:
            lines.append(f"{r['out_hw'][0]}x{r['out_hw'][1]:<5} {r['backend']:>7} {r['error']}")
            continue
        lines.append(
            f"{str(r['out_hw'][0]) + 'x' + str(r['out_hw'][1]):>11} {r['backend']:>7} {r['fps']:7.2f} "
            f"{_fmt(r['call0_s'], '8.3f')} {_fmt(r['steady_chunk_s'], '8.3f')} {_fmt(r['steady_dit_s'], '7.3f')} "
            f"{_fmt(r['steady_decode_s'], '7.3f')} {_fmt(r['peak_mem_gb'], '8.2f')} "
            f"{_fmt(r['dit_tflops_per_s'], '8.1f')}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
