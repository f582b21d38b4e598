"""FP8 linears against the plain model on real frames, with trained weights: PSNR between the two outputs.

The Hopper issue asks the FP8 path to stay at or above 40 dB against the bf16 output. Random official-size
weights cannot test that (compilation alone moves their output to about 35 dB, docs/performance.md); trained
weights can. This loads a FlashVSR folder twice, converts one copy's DiT block linears to FP8
(:func:`~streamvsr.models.flashvsr.fp8.convert_dit_linears_to_fp8`: ``torch._scaled_mm`` on Hopper, elsewhere
the emulation with the same quantisation), streams the same LR clips (BI x4 of the sequences in ``--data``)
through both with the same noise, and reports the PSNR of the FP8 output against the plain one. For scale, a
bf16 copy of the plain model is compared too (on the CPU, where the plain model runs in float32).

    python bench/fp8_accuracy.py --weights DIR --data ../shared/data/val/davis2016 --max-frames 17 --device cpu
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from streamvsr.eval.data import degrade, find_sequences, frames_to_tensor
from streamvsr.eval.metrics import psnr as psnr_np
from streamvsr.models.flashvsr.fp8 import DEFAULT_INCLUDE, convert_dit_linears_to_fp8
from streamvsr.pipeline.engine import Engine
from streamvsr.pipeline.registry import load_model

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def psnr(x: torch.Tensor, ref: torch.Tensor) -> float:
    """PSNR in dB of host frames in [0, 1] (over all frames and channels at once)."""
    return psnr_np(x.numpy(), ref.numpy(), data_range=1.0)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="a FlashVSR folder (ours or official)")
    p.add_argument("--data", required=True, help="sequences (folders of images or videos), degraded BI x4")
    p.add_argument("--max-frames", type=int, default=17)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default=None, choices=sorted(DTYPES), help="plain model (default: bf16 on CUDA)")
    p.add_argument("--fp8-include", default=",".join(DEFAULT_INCLUDE))
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    device = torch.device(a.device)
    dtype = DTYPES[a.dtype] if a.dtype else (torch.bfloat16 if device.type == "cuda" else torch.float32)

    def model(dt: torch.dtype, fp8: bool):  # noqa: ANN202
        m = load_model("flashvsr", weights=a.weights, device=device, dtype=dt, scale=4)
        n = convert_dit_linears_to_fp8(m.dit, [x for x in a.fp8_include.split(",") if x]) if fp8 else 0
        return m, n

    plain, _ = model(dtype, False)
    fp8, n_fp8 = model(dtype, True)
    variants = {"fp8": fp8}
    if dtype != torch.bfloat16:
        variants["bf16"] = model(torch.bfloat16, False)[0]
    results = []
    for src in find_sequences(a.data):
        _, lq = degrade(src.frames(a.max_frames), "bi", 4)
        x = frames_to_tensor(lq)  # (T, 3, h, w) in [0, 1]
        t0 = time.perf_counter()
        ref = Engine(plain, device=device).run(x).float().cpu()
        row = {"sequence": src.name, "frames": x.shape[0], "size": list(ref.shape[-2:])}
        row["plain_s"] = time.perf_counter() - t0
        for label, m in variants.items():
            out = Engine(m, device=device).run(x).float().cpu()
            row[f"psnr_{label}_db"] = psnr(out, ref)
            row[f"min_frame_psnr_{label}_db"] = min(psnr(out[i], ref[i]) for i in range(out.shape[0]))
        results.append(row)
        print(json.dumps(row), flush=True)
    labels = list(variants)
    print(f"\nplain: {a.weights} in {str(dtype).removeprefix('torch.')} on {device}; FP8 linears: {n_fp8}")
    print(f"{'sequence':>14} {'frames':>6}" + "".join(f" {x + ' dB':>10} {x + ' min':>10}" for x in labels))
    for r in results:
        cells = "".join(f" {r[f'psnr_{x}_db']:10.2f} {r[f'min_frame_psnr_{x}_db']:10.2f}" for x in labels)
        print(f"{r['sequence']:>14} {r['frames']:>6}" + cells)
    means = {x: sum(r[f"psnr_{x}_db"] for r in results) / len(results) for x in labels}
    print(f"{'mean':>14} {'':>6}" + "".join(f" {means[x]:10.2f} {'':>10}" for x in labels))
    if a.json:
        meta = {"weights": a.weights, "device": str(device), "dtype": str(dtype), "fp8_linears": n_fp8}
        Path(a.json).write_text(json.dumps({"meta": meta, "mean_psnr_db": means, "results": results}, indent=2))
    return results


if __name__ == "__main__":
    main()
