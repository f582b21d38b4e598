"""Does a model lose PSNR to a sub-pixel shift or a brightness bias? BI x4 of validation clips, on the CPU.

    .venv/bin/python scripts/check_alignment.py --model flashvsr-fast --model bicubic --clips 2 --frames 6

For each model and clip: Y-PSNR of the output (border crop 4), the best Y-PSNR over output shifts of -0.5 to
0.5 pixels in steps of 0.25 (bicubic resampling of the output, first three frames), and the linear fit
gt_Y = gain * out_Y + offset over all frames. An aligned, unbiased model is best unshifted with gain near 1.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from streamvsr.eval.data import find_sequences, iter_sequences
from streamvsr.eval.metrics import psnr_y, rgb_to_y
from streamvsr.eval.runner import run_model
from streamvsr.pipeline.registry import load_model

ROOT = Path(os.environ.get("STREAMVSR_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
SHIFTS = (-0.5, -0.25, 0.0, 0.25, 0.5)


def shifted(img: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """(H, W, 3) image moved by (dy, dx) output pixels (bicubic, border padding)."""
    t = torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)[None]
    h, w = t.shape[-2:]
    theta = torch.tensor([[[1.0, 0.0, 2 * dx / w], [0.0, 1.0, 2 * dy / h]]])
    grid = F.affine_grid(theta, list(t.shape), align_corners=False)
    out = F.grid_sample(t, grid, mode="bicubic", padding_mode="border", align_corners=False)
    return out[0].permute(1, 2, 0).clamp(0, 255).numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", required=True)
    p.add_argument("--data", default=str(ROOT / "val" / "davis2016"))
    p.add_argument("--clips", type=int, default=2)
    p.add_argument("--frames", type=int, default=6)
    a = p.parse_args()
    dev = torch.device("cpu")
    models = {m: load_model(m, device=dev, scale=4) for m in a.model}
    for name, gt, lq, _ in iter_sequences(find_sequences(a.data)[: a.clips], "bi", 4, max_frames=a.frames):
        for label, model in models.items():
            out, _ = run_model(model, lq, dev)
            base = float(np.mean([psnr_y(o, g, crop=4) for o, g in zip(out, gt, strict=True)]))
            best = max(
                (float(np.mean([psnr_y(shifted(o, dy, dx), g, crop=4) for o, g in zip(out[:3], gt[:3])])), dy, dx)
                for dy in SHIFTS
                for dx in SHIFTS
            )
            yo = np.concatenate([rgb_to_y(o.astype(np.float64)).ravel() for o in out])
            yg = np.concatenate([rgb_to_y(g.astype(np.float64)).ravel() for g in gt])
            gain, offset = np.polyfit(yo, yg, 1)
            print(
                f"{name} {label}: Y-PSNR {base:.2f}; best shift (dy, dx) = ({best[1]}, {best[2]}) -> {best[0]:.2f} "
                f"(3 frames); Y fit gain {gain:.4f}, offset {offset:.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
