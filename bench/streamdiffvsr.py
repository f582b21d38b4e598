"""Benchmark Stream-DiffVSR: seconds per frame and peak GPU memory at 720p / 1080p output.

Random weights of the official sizes are built from the configs (no download, no weights folder):
UNet 472 M + ControlNet 208 M + TAE 2 M + RAFT-large 5.3 M. Frames are a smooth texture that moves a
few pixels per frame, pushed one at a time through the streaming Engine (as ``streamvsr upscale`` does).

    python bench/streamdiffvsr.py --device cuda --dtype bf16 --sizes 720p,1080p --json out.json
    python bench/streamdiffvsr.py --flows raft:1.0,raft:0.5,raft:lr,dis:lr --profile
    python bench/streamdiffvsr.py --tiny --device cpu            # quick smoke run

Timing: median over ``--frames`` frames after ``--warmup`` frames (the first frame of a stream has no
ControlNet and no flow, so warm-up always covers it). Peak memory is ``torch.cuda.max_memory_allocated``
over the timed frames, weights included.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from streamvsr.pipeline.engine import Engine  # noqa: E402
from streamvsr.pipeline.streamdiffvsr import StreamDiffVSRUpscaler, build_components  # noqa: E402

SIZES = {"540p": (135, 240), "720p": (180, 320), "1080p": (270, 480), "1440p": (360, 640)}
TINY_SIZES = {"tiny": (16, 24)}
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def moving_texture(n: int, h: int, w: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """``(n, 3, h, w)`` in [0, 1]: a smooth random texture translated by (2, 1) px per frame."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, h // 4 + 8, w // 4 + 8, generator=g)
    base = F.interpolate(base, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)
    frames = [torch.roll(base, shifts=(i, 2 * i), dims=(2, 3))[..., :h, :w] for i in range(n)]
    return torch.cat(frames).to(device)


def parse_flows(spec: str) -> list[tuple[str, float | str]]:
    out: list[tuple[str, float | str]] = []
    for item in spec.split(","):
        method, _, res = item.strip().partition(":")
        res = res or "1.0"
        out.append((method, res if res in ("lr", "hr") else float(res)))
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_one(comps, size: str, lr_hw: tuple[int, int], flow: tuple[str, float | str], args, device) -> dict:
    dtype = DTYPES[args.dtype]
    up = StreamDiffVSRUpscaler(
        comps,
        device,
        dtype,
        flow=flow[0],
        flow_resolution=flow[1],
        corr=args.corr,
        raft_iters=args.raft_iters,
        compile=args.compile,
        channels_last=not args.no_channels_last,
        channels_last_unet=args.channels_last_unet,
        fast_group_norm=False if args.no_fast_gn else None,
        cuda_graphs=False if args.no_cuda_graphs or device.type != "cuda" else None,
        corr_budget_gb=args.corr_budget_gb,
    )
    eng = Engine(up, device)
    frames = moving_texture(args.warmup + args.frames, *lr_hw, device)
    for i in range(args.warmup):
        eng.push(frames[i : i + 1])
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(args.warmup, args.warmup + args.frames):
        t0 = time.perf_counter()
        out = eng.push(frames[i : i + 1])
        sync(device)
        times.append(time.perf_counter() - t0)
    row = {
        "size": size,
        "lr": list(lr_hw),
        "out": [out.shape[-2], out.shape[-1]],
        "flow": flow[0],
        "flow_resolution": flow[1],
        "dtype": args.dtype,
        "compile": args.compile,
        "cuda_graphs": up.cuda_graphs,
        "channels_last_unet": args.channels_last_unet,
        "fast_group_norm": not args.no_fast_gn,
        "s_per_frame": statistics.median(times),
        "s_per_frame_mean": statistics.fmean(times),
        "fps": 1.0 / statistics.median(times),
        "finite": bool(torch.isfinite(out).all()),
    }
    if device.type == "cuda":
        row["peak_alloc_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
        row["peak_reserved_gb"] = torch.cuda.max_memory_reserved(device) / 1e9
    if args.trace:
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=acts) as prof:
            t0 = time.perf_counter()
            eng.push(frames[-1:])
            sync(device)
            wall = time.perf_counter() - t0
        key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
        events = prof.key_averages()
        busy = sum(getattr(e, key) for e in events) / 1e6
        print(events.table(sort_by=key, row_limit=args.trace))
        print(f"trace: wall {wall:.4f} s, summed self {'device' if device.type == 'cuda' else 'cpu'} time {busy:.4f} s")
        row["trace_wall_s"], row["trace_busy_s"] = wall, busy
    if args.profile:
        up.profile = True
        for i in range(args.warmup, args.warmup + args.frames):
            eng.push(frames[i : i + 1])
        n = max(up.times.frames, 1)
        row["stages_s"] = {k: getattr(up.times, k) / n for k in ("flow", "condition", "denoise", "decode")}
    del up, eng, frames, out
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=list(DTYPES), default="bf16")
    ap.add_argument("--sizes", default="720p,1080p", help=f"comma list of {', '.join(SIZES)}")
    ap.add_argument("--flows", default="raft:1.0", help="comma list of METHOD:RES (raft|dis : 1.0|0.5|lr)")
    ap.add_argument("--corr", default="auto", choices=["auto", "all-pairs", "on-demand"])
    ap.add_argument("--raft-iters", type=int, default=12)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="torch.compile the UNet and ControlNet")
    ap.add_argument("--no-channels-last", action="store_true", help="NCHW also for the HR convolutions")
    ap.add_argument("--channels-last-unet", action="store_true", help="NHWC for the UNet and ControlNet too")
    ap.add_argument("--no-fast-gn", action="store_true", help="keep PyTorch's GroupNorm kernel")
    ap.add_argument("--no-cuda-graphs", action="store_true", help="run the denoising loop eagerly")
    ap.add_argument("--corr-budget-gb", type=float, default=6.0, help="all-pairs RAFT correlation up to this")
    ap.add_argument("--profile", action="store_true", help="also report per-stage times (extra pass)")
    ap.add_argument("--trace", type=int, default=0, help="print the N costliest ops of one frame (torch.profiler)")
    ap.add_argument("--tiny", action="store_true", help="tiny random configs (smoke test)")
    ap.add_argument("--json", default=None, help="write the rows here")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    elif args.dtype != "fp32":
        args.dtype = "fp32"
    sizes = TINY_SIZES if args.tiny else {k: SIZES[k] for k in args.sizes.split(",")}
    t0 = time.perf_counter()
    comps = build_components("tiny" if args.tiny else "official", device, DTYPES[args.dtype])
    build_s = time.perf_counter() - t0
    rows = []
    for size, lr_hw in sizes.items():
        for flow in parse_flows(args.flows):
            rows.append(run_one(comps, size, lr_hw, flow, args, device))
            r = rows[-1]
            print(
                f"{r['size']:>6} {r['out'][1]}x{r['out'][0]} flow={r['flow']}:{r['flow_resolution']}"
                f" {r['s_per_frame']:.4f} s/frame"
                + (f"  peak {r['peak_alloc_gb']:.2f} GB" if "peak_alloc_gb" in r else ""),
                flush=True,
            )
    meta = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "build_s": build_s,
        "params_m": {
            "unet": sum(p.numel() for p in comps.unet.parameters()) / 1e6,
            "controlnet": sum(p.numel() for p in comps.controlnet.parameters()) / 1e6,
            "tae": sum(p.numel() for p in comps.vae.parameters()) / 1e6,
            "raft": sum(p.numel() for p in comps.raft.parameters()) / 1e6,
        },
    }
    graphs = "off" if args.no_cuda_graphs or device.type != "cuda" else "on"
    print(f"\n{meta['device']}, torch {meta['torch']}, dtype {args.dtype}, compile={args.compile}, graphs={graphs}")
    print(f"{'size':>6} {'output':>10} {'flow':>10} {'s/frame':>8} {'fps':>6} {'peak GB':>8} {'stages (s)':>10}")
    for r in rows:
        stages = " ".join(f"{k}={v:.3f}" for k, v in r.get("stages_s", {}).items())
        peak = f"{r['peak_alloc_gb']:8.2f}" if "peak_alloc_gb" in r else f"{'-':>8}"
        print(
            f"{r['size']:>6} {r['out'][1]:>5}x{r['out'][0]:<4} {r['flow'] + ':' + str(r['flow_resolution']):>10}"
            f" {r['s_per_frame']:8.4f} {r['fps']:6.2f} {peak} {stages}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main()
