"""How much of the training data a stage-3 ``--lpips-mask LOW:HIGH`` would leave without LPIPS.

    .venv/bin/python scripts/texture_mask_stats.py --clips 6 --mask 0.02:0.06

Reads the first frame of the first ``--clips`` DAVIS clips of ../shared/data/train (RGB in [-1, 1], as the
recipes see it) and prints the quantiles of the 16x16 tiles' detail RMS (``losses.local_detail_rms``, mean over
channels) and, for the mask, the share of tiles below LOW (weight 0) and above HIGH (weight 1).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from streamvsr.train.losses import local_detail_rms

ROOT = Path(os.environ.get("STREAMVSR_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=6)
    p.add_argument("--mask", default="0.02:0.06", metavar="LOW:HIGH")
    a = p.parse_args()
    low, high = (float(v) for v in a.mask.split(":"))
    clips = sorted(d for d in (ROOT / "train" / "video" / "davis2016").iterdir() if d.is_dir())[: a.clips]
    rms = []
    for clip in clips:
        first = sorted(clip.glob("*.jpg"))[0]
        img = np.asarray(Image.open(first).convert("RGB"), dtype=np.float32) / 127.5 - 1
        rms.append(local_detail_rms(torch.from_numpy(img).permute(2, 0, 1)[None]).mean(1).flatten())
    v = torch.cat(rms)
    qs = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9)
    print(
        f"{len(clips)} clips, {v.numel()} tiles; detail RMS quantiles "
        + ", ".join(f"{q:.0%} {float(torch.quantile(v, q)):.4f}" for q in qs)
    )
    print(
        f"mask {low}:{high}: {float((v < low).float().mean()):.1%} of the tiles at weight 0, "
        f"{float((v > high).float().mean()):.1%} at weight 1"
    )


if __name__ == "__main__":
    main()
