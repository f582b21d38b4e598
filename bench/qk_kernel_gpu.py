"""The projection step's q/k tail (RMSNorm, RoPE, block means) on one GPU, official width (12 heads of 128), bf16,
one steady 768x1408 call (8448 tokens): Inductor's compiled reference against the Triton kernel
(``models.flashvsr.qk_kernel``), for one of q or k, and the kernel's rows per program.

    python3 bench/qk_kernel_gpu.py [--tokens 8448] [--json qk.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from streamvsr.models.flashvsr import qk_kernel as QK

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_timing import timed  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=8448)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    H, d, block, L = 12, 128, 128, a.tokens
    g = torch.Generator(device="cuda").manual_seed(0)
    x = (torch.randn(1, L, H * d, device="cuda", generator=g) * 2).to(torch.bfloat16)
    w = (torch.rand(H * d, device="cuda", generator=g) + 0.5).to(torch.bfloat16)
    ang = torch.rand(L, d // 2, device="cuda", generator=g) * 100
    cos, sin = ang.cos(), ang.sin()
    ref = torch.compile(QK.qk_norm_rope_reference, dynamic=False)
    rows = []
    mb = (2 * x.numel() * 2 + 2 * cos.numel() * 4) / 1e6  # read x and the tables, write the output
    cases = [("Inductor, the reference compiled", lambda: ref(x, w, 1e-6, cos, sin, H, block))]
    for bt in (16, 32, 64):
        for warps in (2, 4, 8):
            cases.append(
                (f"Triton kernel, {bt} rows, {warps} warps", lambda bt=bt, wp=warps: QK.qk_norm_rope(
                    x, w, 1e-6, cos, sin, H, block, rows_per_program=bt, num_warps=wp))
            )  # fmt: skip
    cases.append(cases[0])  # Inductor's again, last
    print(f"{'case':44s} {'us':>8s} {'GB/s':>7s}")
    for name, fn in cases:
        try:
            us = timed(fn, reps=200, warmup=20) * 1e6
        except Exception as e:  # noqa: BLE001 - a configuration the compiler refuses is a result
            print(f"{name:44s} {type(e).__name__}: {str(e)[:80]}")
            rows.append({"case": name, "error": str(e)[:200]})
            continue
        rows.append({"case": name, "us": us, "gb_per_s": mb / us * 1e3})
        print(f"{name:44s} {us:8.1f} {mb / us * 1e3:7.0f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "tokens": L, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
