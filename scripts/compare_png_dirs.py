"""PSNR (RGB, 0..255) between two folders of PNG frames of the same video, frame by frame (sorted names).

    .venv/bin/python scripts/compare_png_dirs.py A_DIR B_DIR

Prints the frame count, the mean and the lowest PSNR. Used for `streamvsr upscale --fp8` against the same run
without it (docs/performance.md); identical frames count as 99 dB.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from streamvsr.eval.data import read_image
from streamvsr.eval.metrics import psnr


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    a, b = (sorted(Path(d).glob("*.png")) for d in sys.argv[1:])
    if not a or len(a) != len(b):
        sys.exit(f"compare_png_dirs: {len(a)} against {len(b)} PNG frames")
    values = []
    for x, y in zip(a, b, strict=True):
        fx, fy = read_image(x), read_image(y)
        values.append(99.0 if np.array_equal(fx, fy) else psnr(fx, fy))
    print(f"{len(values)} frames: mean PSNR {np.mean(values):.2f} dB, lowest {np.min(values):.2f} dB")


if __name__ == "__main__":
    main()
