"""Upscale a crop of a clip with several models and write their frame side by side (full resolution).

    .venv/bin/python scripts/crop_compare.py CLIP Y X H W OUT.png MODEL [MODEL ...] [--frame 16] [--noise S]

MODEL is a registry name, or ``flashvsr=DIR``. The crop (LR pixels; H and W multiples of 32 for FlashVSR) of the
first 33 frames is streamed through each model on the CPU, and output frame ``--frame`` is kept. ``--noise S``
scales FlashVSR's input noise (0: no noise). Montages of `streamvsr eval --report` are downscaled; this shows
single output pixels (used for the hatching in docs/training.md). ``--diff-cols A:B`` also prints, for each model,
the RMS grey-level difference from the first model's frame over output columns A..B-1 of the crop (e.g. a flat
wall, where texture a model draws and bicubic does not shows up as a difference).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image

from streamvsr.media import open_reader
from streamvsr.pipeline import flashvsr
from streamvsr.pipeline.engine import Engine
from streamvsr.pipeline.registry import load_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("clip")
    for name in ("y", "x", "h", "w"):
        p.add_argument(name, type=int)
    p.add_argument("out")
    p.add_argument("models", nargs="+")
    p.add_argument("--frame", type=int, default=16)
    p.add_argument("--frames", type=int, default=33)
    p.add_argument("--noise", type=float, default=1.0)
    p.add_argument("--diff-cols", default=None, metavar="A:B")
    a = p.parse_args()
    frames = []
    with open_reader(a.clip) as r:
        for f in r:
            frames.append(f.rgb[a.y : a.y + a.h, a.x : a.x + a.w])
            if len(frames) == a.frames:
                break
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255
    draw = flashvsr.FlashVSRUpscaler._draw_noise
    flashvsr.FlashVSRUpscaler._draw_noise = lambda self, i, j, shape: draw(self, i, j, shape) * a.noise
    tiles = []
    for spec in a.models:
        name, _, weights = spec.partition("=")
        model = load_model(name, weights=weights or None, device=torch.device("cpu"), dtype=torch.float32, scale=4)
        out = Engine(model).run(x, chunk=8)[a.frame]
        tiles.append((out.permute(1, 2, 0).numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8))
        line = spec
        if a.diff_cols:
            c0, c1 = (int(v) for v in a.diff_cols.split(":"))
            grey = [np.asarray(Image.fromarray(t).convert("L"), np.float64)[:, c0:c1] for t in (tiles[0], tiles[-1])]
            rms = np.sqrt(np.mean((grey[1] - grey[0]) ** 2))
            line += f"  RMS difference from {a.models[0]} over columns {c0}:{c1}: {rms:.3f}"
        print(line, flush=True)
    Image.fromarray(np.concatenate(tiles, axis=1)).save(a.out)


if __name__ == "__main__":
    main()
