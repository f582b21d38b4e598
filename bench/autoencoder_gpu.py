"""Throughput of our causal video autoencoder (encode / decode) at 1080p on one GPU, bf16.

Usage: PYTHONPATH=src python3 bench/autoencoder_gpu.py [--size small] [--export runs/ae/export]
Prints one JSON line per measurement (frames per second of video, not latents).
"""

from __future__ import annotations

import argparse
import json

import torch
from gpu_timing import timed  # bench/ is the script's folder

from streamvsr.models.autoencoder import AE_SIZES, VideoAutoencoder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="small")
    ap.add_argument("--export", default=None, help="export dir to load (else random weights)")
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    if a.export:
        from streamvsr.train.export import load_autoencoder

        model = load_autoencoder(a.export, device="cuda")
    else:
        model = VideoAutoencoder(AE_SIZES[a.size]).cuda().eval()
    x = torch.rand(1, 3, a.frames, a.height, a.width, device="cuda") * 2 - 1
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        z = model.encode(x)
        t_enc = timed(lambda: model.encode(x), a.reps)
        t_dec = timed(lambda: model.decode(z), a.reps)
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        model.decode(z)
    mem = torch.cuda.max_memory_allocated() / 2**30
    for name, t in (("encode", t_enc), ("decode", t_dec)):
        rec = {"op": name, "size": a.size, "res": f"{a.width}x{a.height}", "frames": a.frames}
        rec.update(fps=a.frames / t, ms_per_clip=1000 * t, gpu=torch.cuda.get_device_name())
        print(json.dumps(rec))
    print(json.dumps({"op": "decode_peak_mem_gib", "value": mem}))


if __name__ == "__main__":
    main()
