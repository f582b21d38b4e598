#!/usr/bin/env python3
"""Write a FlashVSR weights folder in our layout with random weights of a named size or a config.json (benchmarks).

The folder loads like a trained one (``streamvsr upscale --model flashvsr --weights DIR``), so end-to-end runs
(batch, segments, multi-GPU) can be timed at the official size without the official files.

    python scripts/make_random_model.py /tmp/rand13b --size official-1.3b --device cuda --dtype bf16
"""

from __future__ import annotations

import argparse
import time

import torch

from streamvsr.pipeline.flashvsr import FlashVSRUpscaler
from streamvsr.pipeline.flashvsr_weights import save_flashvsr
from streamvsr.train.flashvsr_common import resolve_size

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--size", default="official-1.3b", help="a named size or a FlashVSR config.json")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    cfg = resolve_size(a.size)
    context = None
    if not cfg.dit.learned_context:  # a random stand-in for the official prompt tensor
        g = torch.Generator().manual_seed(a.seed)
        context = torch.randn(1, cfg.dit.text_len, cfg.dit.text_dim, generator=g).to(DTYPES[a.dtype])
    up = FlashVSRUpscaler.from_config(
        cfg,
        device=a.device,
        dtype=DTYPES[a.dtype],
        init_seed=a.seed,
        context=context.to(a.device) if context is not None else None,
    )
    modules = {"dit": up.dit, "lq_proj": up.lq_proj, "decoder": up.decoder}
    if context is not None:
        modules["context"] = context
    paths = save_flashvsr(a.folder, cfg, modules)
    size = sum(p.stat().st_size for p in paths)
    print(f"wrote {a.folder}: {a.size}, {len(paths)} files, {size / 2**20:.0f} MiB in {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
