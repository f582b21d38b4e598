"""Gate check of a trained autoencoder + TCDecoder on validation sequences (BI x4), before the DiT stages.

Per sequence (the first ``--frames`` frames, 1 + 4k, cropped to multiples of 32), the RGB PSNR of
  * the autoencoder's reconstruction of the HR frames,
  * the TCDecoder given the autoencoder's latents of the *ground truth* and the bicubic LR condition (the
    best the DiT could hope for with this decoder),
  * the TCDecoder given the autoencoder's latents of the bicubic LR condition (``tc_lr_latents``: what a conditional
    autoencoder trained with ``tcdecoder --encode-lr`` gives, a plain super-resolution network),
  * the TCDecoder given zero latents (what the decoder makes of the LR alone),
  * bicubic (the condition itself).

    .venv/bin/python scripts/check_tcdecoder.py --ae runs/ae/export --tcdecoder runs/tc \\
        --data ../shared/data/val/davis2016 [--frames 9] [--device cuda]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from streamvsr.eval.data import find_sequences, iter_sequences
from streamvsr.train.export import load_autoencoder
from streamvsr.train.flashvsr_common import load_tcdecoder, upsample_lr


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR of two (B, 3, F, H, W) clips in [-1, 1], after 8-bit rounding."""
    a = ((a.float().clamp(-1, 1) + 1) * 127.5).round()
    b = ((b.float().clamp(-1, 1) + 1) * 127.5).round()
    return float(10 * torch.log10(255.0**2 / ((a - b) ** 2).mean()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ae", required=True)
    ap.add_argument("--tcdecoder", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--frames", type=int, default=9)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.frames < 5 or (args.frames - 1) % 4:
        raise SystemExit("error: --frames must be 1 + 4k >= 5")
    dev = torch.device(args.device)
    ae = load_autoencoder(args.ae, dev)
    tc = load_tcdecoder(args.tcdecoder, None, dev)
    rows = []
    with torch.no_grad():
        for name, gt, lq, _ in iter_sequences(find_sequences(args.data), "bi", 4, args.frames):
            h, w = gt[0].shape[0] // 32 * 32, gt[0].shape[1] // 32 * 32
            hr = torch.from_numpy(np.stack(gt)[:, :h, :w]).to(dev).float().div(127.5).sub(1)
            hr = hr.permute(3, 0, 1, 2)[None]  # (1, 3, F, H, W)
            lr = torch.from_numpy(np.stack(lq)[:, : h // 4, : w // 4]).to(dev).float().div(255)
            cond = upsample_lr(lr.permute(0, 3, 1, 2)[None])  # (1, 3, F, H, W) in [-1, 1]
            z = ae.encode(hr)
            rec = ae.decode(z)[:, :, : args.frames]
            out = tc(z, cond)
            n = out.shape[2]
            row = {
                "sequence": name,
                "ae_recon": psnr(rec, hr),
                "tc_gt_latents": psnr(out, hr[:, :, :n]),
                "tc_lr_latents": psnr(tc(ae.encode(cond), cond), hr[:, :, :n]),
                "tc_zero_latents": psnr(tc(torch.zeros_like(z), cond), hr[:, :, :n]),
                "bicubic": psnr(cond[:, :, :n], hr[:, :, :n]),
            }
            rows.append(row)
            print(" ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    keys = ("ae_recon", "tc_gt_latents", "tc_lr_latents", "tc_zero_latents", "bicubic")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    print("mean " + " ".join(f"{k}={v:.2f}" for k, v in mean.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"sequences": rows, "mean": mean}, f, indent=2)


if __name__ == "__main__":
    main()
