"""CPU-side costs of the upscale path at FlashVSR's 768x1408 output: the official LQ upsampling and the encoder.

- Pillow's bicubic x4 of one 352x192 frame (the official numerics) against its bit-exact tensor version
  (``ops.resize.pillow_bicubic_uint8``) on the CPU, ms per frame after one untimed call;
- libx264 encoding speed of 1408x768 frames that look like noise (what random weights produce) and of a
  smooth moving pattern, at two presets, crf 18, with the encoder's automatic thread count.

    python bench/cpu_side.py --json cpu_side.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from streamvsr.ops.resize import pillow_bicubic_uint8, resize_pillow_bicubic


def time_resize(repeats: int) -> list[dict]:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (192, 352, 3), dtype=np.uint8)
    size = (768, 1408)
    t = torch.from_numpy(img).permute(2, 0, 1).contiguous()
    rows = []
    for name, fn in (
        ("pillow", lambda: resize_pillow_bicubic(img, size)),
        ("tensor (cpu)", lambda: pillow_bicubic_uint8(t, size)),
    ):
        fn()  # untimed: coefficient tables, allocator
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        rows.append({"what": f"bicubic x4 352x192, {name}", "ms_per_frame": (time.perf_counter() - t0) / repeats * 1e3})
    return rows


def time_encode(frames: int) -> list[dict]:
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:768, 0:1408]
    rows = []
    for kind in ("noise", "smooth"):
        if kind == "noise":
            imgs = [rng.integers(0, 256, (768, 1408, 3), dtype=np.uint8) for _ in range(frames)]
        else:
            imgs = [
                np.stack([(xx + 3 * i) % 256, (yy + i) % 256, (xx + yy) % 256], -1).astype(np.uint8)
                for i in range(frames)
            ]
        yuv = [av.VideoFrame.from_ndarray(a, format="rgb24").reformat(format="yuv420p") for a in imgs]
        for preset in ("medium", "veryfast"):
            with av.open(os.devnull, "w", format="mp4") as out:
                st = out.add_stream("libx264", rate=Fraction(24))
                st.width, st.height, st.pix_fmt = 1408, 768, "yuv420p"
                st.options = {"preset": preset, "crf": "18"}
                t0 = time.perf_counter()
                for f in yuv:
                    for p in st.encode(f):
                        out.mux(p)
                for p in st.encode():
                    out.mux(p)
                el = time.perf_counter() - t0
            rows.append({"what": f"libx264 {preset} crf 18, 1408x768 {kind}", "fps": frames / el})
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=16)
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    rows = time_resize(a.repeats) + time_encode(a.frames)
    for r in rows:
        value = f"{r['ms_per_frame']:8.1f} ms/frame" if "ms_per_frame" in r else f"{r['fps']:8.1f} fps"
        print(f"{r['what']:<48} {value}")
    if a.json:
        meta = {"argv": argv if argv is not None else sys.argv[1:], "cpus": os.cpu_count()}
        Path(a.json).write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
