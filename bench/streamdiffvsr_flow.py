"""Quality cost of the cheaper flow options, measured on real clips (CPU, OpenCV DIS).

For each consecutive pair of ground-truth HR frames of a clip (cropped to a multiple of 16), the LR pair
is made by antialiased bicubic x1/4; flow is then estimated from the LR pair as the pipeline does
(bicubic x4 up to ``resolution`` x HR, flow there, resized to HR) and compared with

* ``epe_vs_full``: end-point error (HR pixels) against the same method at full HR resolution;
* ``epe_vs_gt_flow``: EPE against DIS run on the *ground-truth* HR pair (an oracle-ish reference);
* ``warp_mae``: mean |warp(GT_{t-1}, flow) - GT_t| in 8-bit levels (16-px border excluded), with the
  pipeline's warp; ``zero_flow`` is the same error with no motion compensation.

RAFT options need the pretrained RAFT-large weights to mean anything; pass ``--raft FILE`` (torchvision
``raft_large_C_T_SKHT_V2-ff5fadd5.pth``) to include them.

    python bench/streamdiffvsr_flow.py --data /work/shared/data/val/davis2016 --pairs 20 --json flow.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from streamvsr.ops.flow import FlowEstimator, dis_flow, epe, warp  # noqa: E402


def load_clip(folder: Path, n: int) -> torch.Tensor:
    """First ``n`` frames as ``(n, 3, H, W)`` in [-1, 1], cropped to multiples of 16."""
    files = sorted(folder.glob("*.jpg")) + sorted(folder.glob("*.png"))
    frames = []
    for f in files[:n]:
        a = np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 127.5 - 1
        h, w = a.shape[0] // 16 * 16, a.shape[1] // 16 * 16
        frames.append(torch.from_numpy(a[:h, :w]).permute(2, 0, 1))
    return torch.stack(frames)


def downscale(hr: torch.Tensor, s: int = 4) -> torch.Tensor:
    h, w = hr.shape[-2:]
    return F.interpolate(hr, size=(h // s, w // s), mode="bicubic", antialias=True, align_corners=False).clamp(-1, 1)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="/work/shared/data/val/davis2016")
    ap.add_argument("--pairs", type=int, default=20, help="frame pairs per clip")
    ap.add_argument("--options", default="dis:1.0,dis:0.5,dis:lr")
    ap.add_argument("--preset", default="medium", choices=["ultrafast", "fast", "medium"])
    ap.add_argument("--raft", default=None, help="RAFT-large weights file to also test raft:* options")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    raft = None
    opts = [(m, r if r == "lr" else float(r)) for m, _, r in (o.partition(":") for o in args.options.split(","))]
    if args.raft:
        from streamvsr.pipeline.streamdiffvsr import load_raft

        raft = load_raft(args.raft)
        opts += [("raft", 1.0), ("raft", 0.5), ("raft", "lr")]
    ests = {f"{m}:{r}": FlowEstimator(m, raft, 4, r, dis_preset=args.preset) for m, r in opts}
    stats: dict[str, dict[str, list[float]]] = {k: {} for k in [*ests, "zero_flow"]}

    def add(key: str, name: str, v: float) -> None:
        stats[key].setdefault(name, []).append(v)

    for clip in sorted(p for p in Path(args.data).iterdir() if p.is_dir()):
        hr = load_clip(clip, args.pairs + 1)
        lr = downscale(hr)
        for i in range(1, hr.shape[0]):
            cur, prev = hr[i : i + 1], hr[i - 1 : i]
            gt_flow = dis_flow(cur, prev, args.preset)
            m = 16
            zero = (warp(prev, torch.zeros_like(gt_flow)) - cur)[..., m:-m, m:-m].abs().mean() * 127.5
            add("zero_flow", "warp_mae", float(zero))
            flows = {}
            for key, est in ests.items():
                t0 = time.perf_counter()
                flows[key] = est(lr[i : i + 1], lr[i - 1 : i])
                add(key, "seconds", time.perf_counter() - t0)
            for key, fl in flows.items():
                full = flows[key.split(":")[0] + ":1.0"]
                add(key, "epe_vs_full", epe(fl, full))
                add(key, "epe_vs_gt_flow", epe(fl, gt_flow))
                add(key, "warp_mae", float((warp(prev, fl) - cur)[..., m:-m, m:-m].abs().mean() * 127.5))
        print(f"{clip.name}: {hr.shape[0] - 1} pairs at {hr.shape[-1]}x{hr.shape[-2]}", flush=True)
    summary = {k: {n: statistics.fmean(v) for n, v in d.items()} for k, d in stats.items()}
    print(f"\n{'option':>10} {'EPE vs full':>12} {'EPE vs GT-DIS':>14} {'warp MAE':>9} {'s/pair':>8}")
    for k, d in summary.items():
        print(
            f"{k:>10} {d.get('epe_vs_full', float('nan')):12.3f} {d.get('epe_vs_gt_flow', float('nan')):14.3f}"
            f" {d['warp_mae']:9.3f} {d.get('seconds', float('nan')):8.4f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
