# ruff: noqa: B023  (each lambda is timed immediately, inside its loop iteration)
"""The DiT block's projection step (``DiTBlock.pre``: modulated LayerNorm, q/k/v linears, RMSNorm, RoPE) of the
official size on one GPU, compiled, with RoPE as the library writes it (one expression) and as Wan writes it
(stacked halves, ``apply_rope_stacked``), its tables in float64 (the reference) and float32 (``rope32``).

    python3 bench/rope_gpu.py [--tokens 8448] [--json rope.json]

Each row: the mean of 50 calls after 5 warm-up calls (``gpu_timing.timed``) of one compiled ``pre`` on the tokens
of one steady 768x1408 chunk (8448), and the largest difference of q and k from the stacked float64 form.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from streamvsr.models.flashvsr import dit as dit_mod
from streamvsr.models.flashvsr.config import SIZES
from streamvsr.models.flashvsr.dit import DiTBlock, rope_angles

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_timing import timed as _timed  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=8448, help="tokens of a chunk (768x1408: 2 x 48 x 88)")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    cfg = SIZES["official-1.3b"].dit
    torch.manual_seed(0)
    dev, bf = "cuda", torch.bfloat16
    block = DiTBlock(cfg).to(dev, bf).eval()
    with torch.no_grad():
        block.modulation.normal_(std=cfg.dim**-0.5)
    L = args.tokens
    x = torch.randn(1, L, cfg.dim, device=dev, dtype=bf)
    t_mod = torch.randn(1, 6, cfg.dim, device=dev, dtype=bf) * 0.1
    h = 48
    cos, sin = rope_angles(torch.arange(L // (h * 88), device=dev), h, 88, cfg.head_dim)
    forms = {"one expression": dit_mod.apply_rope, "stacked (Wan)": dit_mod.apply_rope_stacked}
    rows = []
    with torch.inference_mode():
        dit_mod.apply_rope = forms["stacked (Wan)"]
        ref = block.pre(x, t_mod, cos, sin)
        for tables in ("float64", "float32"):
            c, s = (cos, sin) if tables == "float64" else (cos.float(), sin.float())
            for name, fn in forms.items():
                dit_mod.apply_rope = fn
                torch._dynamo.reset()
                pre = torch.compile(block.pre, dynamic=False)
                out = pre(x, t_mod, c, s)
                diff = max((a.float() - b.float()).abs().max().item() for a, b in zip(out[:2], ref[:2], strict=True))
                ms = _timed(lambda: pre(x, t_mod, c, s), reps=50, warmup=5) * 1e3
                rows.append({"rope": name, "tables": tables, "ms": ms, "max_diff_vs_stacked_f64": diff})
                print(f"RoPE {name:15s} tables {tables}: {ms:7.3f} ms per pre()   max |q,k diff| {diff:.3g}")
        dit_mod.apply_rope = forms["one expression"]
    if args.json:
        Path(args.json).write_text(json.dumps({"tokens": L, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
