"""Where a steady FlashVSR call spends its time on the CPU: the DiT against the TCDecoder (the upscaler's own
``on_chunk`` timings), for the embedded default model or a weights folder.

    .venv/bin/python scripts/cpu_time_split.py [--weights DIR] [--size 320x192] [--frames 57] [--threads 2]
        [--dtype float32|bfloat16]  (default: the upscaler's own choice, bf16 on CPUs with native bf16)
        [--tail-frames N]  (the TCDecoder's full-resolution tail N frames at a time; 0 = all at once;
                            default: the upscaler's own choice)
        [--rope-fp32 0|1]  (the DiT's RoPE math in float32 for bf16 tokens, WanDiT.rope_fp32_for_half;
                            default: the upscaler's own choice)
"""

from __future__ import annotations

import argparse
import time

import torch

from streamvsr.pipeline.registry import load_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=None, help="a FlashVSR folder (default: the embedded flashvsr-fast)")
    p.add_argument("--size", default="320x192", help="LR WxH (multiples of the model's input multiple)")
    p.add_argument("--frames", type=int, default=57)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default=None)
    p.add_argument("--tail-frames", type=int, default=None)
    p.add_argument("--rope-fp32", type=int, choices=[0, 1], default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.split("x"))
    dtype = getattr(torch, args.dtype) if args.dtype else None
    name = "flashvsr" if args.weights else "flashvsr-fast"
    up = load_model(name, weights=args.weights, device=torch.device("cpu"), dtype=dtype)
    if args.tail_frames is not None:
        up.decoder.tail_frames = args.tail_frames or None
    if args.rope_fp32 is not None:
        up.dit.rope_fp32_for_half = bool(args.rope_fp32)
    infos = []
    up.on_chunk = infos.append
    torch.manual_seed(0)
    x = torch.rand(args.frames, 3, h, w)
    t = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, args.frames, 8):
            up.push(x[i : i + 8])
        up.flush()
    total = time.perf_counter() - t
    steady = [c for c in infos if c.index > 0 and c.frames[1] - c.frames[0] == 8]
    rate = args.frames / total
    print(f"{args.frames} frames {w}x{h} -> x4 in {total:.2f} s ({rate:.2f} fps, start included), {up.dtype}")
    print("call  frames     dit_s  decode_s  total_s")
    for c in steady:
        print(f"{c.index:4d}  {c.frames[0]:3d}-{c.frames[1]:3d}  {c.dit_s:8.3f}  {c.decode_s:8.3f}  {c.total_s:7.3f}")
    if steady:
        n = len(steady)
        dit, dec = sum(c.dit_s for c in steady) / n, sum(c.decode_s for c in steady) / n
        print(f"mean per steady call (8 frames): DiT {dit:.3f} s, TCDecoder {dec:.3f} s")


if __name__ == "__main__":
    main()
