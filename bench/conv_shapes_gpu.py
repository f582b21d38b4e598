# ruff: noqa: B023  (each lambda is timed immediately, inside its loop iteration)
"""Eager cuDNN convolutions of the official TCDecoder's shapes on one GPU: NCHW against NHWC (channels_last), the
3-channel output convolution with its output channels padded, and the first convolution's 784 input channels
(768 condition + 16 latent) as one, split, or padded to 832.

    python3 bench/conv_shapes_gpu.py [--json conv_shapes.json]

Each row: the mean of 20 calls after 3 warm-up calls (``gpu_timing.timed``; the version that measured
``docs/runs/2026-11-26-eve/call16_conv_shapes.txt`` timed the same calls with CUDA events), bf16, cuDNN's
heuristic choice (``cudnn.benchmark`` off, as in the pipeline).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_timing import timed as _timed  # noqa: E402


def timed(fn) -> float:  # noqa: ANN001
    """Milliseconds per call: 20 calls after 3 warm-up calls."""
    return _timed(fn, reps=20, warmup=3) * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.backends.cudnn.benchmark = False
    dev, bf = "cuda", torch.bfloat16
    rows = []

    def row(what: str, ms: float) -> None:
        rows.append({"case": what, "ms": ms})
        print(f"{what:58s} {ms:8.3f} ms")

    # (C_in, C_out, H, W, frames): the last conv, the first conv (one latent per pass), a full-resolution 64 -> 64
    for cin, cout, h, w, nb in [(64, 3, 768, 1408, 4), (784, 256, 96, 176, 1), (64, 64, 768, 1408, 4)]:
        x = torch.randn(nb, cin, h, w, device=dev, dtype=bf)
        for fmt in ("nchw", "nhwc"):
            xx = x.contiguous(memory_format=torch.channels_last) if fmt == "nhwc" else x
            for cp in sorted({cout, 8, 16, 32, 64} if cout < 64 else {cout}):
                if cp < cout:
                    continue
                wt = torch.randn(cp, cin, 3, 3, device=dev, dtype=bf)
                if fmt == "nhwc":
                    wt = wt.contiguous(memory_format=torch.channels_last)
                row(
                    f"{cin}->{cout} (out padded to {cp}) {fmt} {nb}x{h}x{w}", timed(lambda: F.conv2d(xx, wt, padding=1))
                )
        if cin == 784:
            for fmt in ("nchw", "nhwc"):
                a, b = x[:, :768].contiguous(), x[:, 768:].contiguous()
                if fmt == "nhwc":
                    a, b = (t.contiguous(memory_format=torch.channels_last) for t in (a, b))
                wa = torch.randn(cout, 768, 3, 3, device=dev, dtype=bf)
                wb = torch.randn(cout, 16, 3, 3, device=dev, dtype=bf)
                row(
                    f"784->256 split 768 + 16 {fmt}",
                    timed(lambda: F.conv2d(a, wa, padding=1) + F.conv2d(b, wb, padding=1)),
                )
                xp = torch.cat([x, x.new_zeros(nb, 48, h, w)], 1)
                if fmt == "nhwc":
                    xp = xp.contiguous(memory_format=torch.channels_last)
                wp = torch.randn(cout, 832, 3, 3, device=dev, dtype=bf)
                row(f"784->256 input padded to 832 {fmt}", timed(lambda: F.conv2d(xp, wp, padding=1)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
