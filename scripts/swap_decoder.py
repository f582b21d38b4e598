"""Write a FlashVSR weights folder whose TCDecoder is replaced by a separately trained one.

    .venv/bin/python scripts/swap_decoder.py FLASHVSR_FOLDER TCDECODER_EXPORT_OR_RUN OUT_FOLDER

The DiT and LQ projector come from FLASHVSR_FOLDER (our layout or official); the decoder (EMA weights and its
config, e.g. ``lq_residual``) from a ``streamvsr.recipes.tcdecoder`` run directory or its export.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from streamvsr.pipeline.flashvsr_weights import load_flashvsr_folder, save_flashvsr
from streamvsr.train.flashvsr_common import load_tcdecoder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("tcdecoder", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    if args.out.resolve() == args.folder.resolve():
        raise SystemExit("error: OUT_FOLDER must differ from FLASHVSR_FOLDER")
    cfg, mods = load_flashvsr_folder(args.folder)
    dec = load_tcdecoder(args.tcdecoder, None, torch.device("cpu"))
    cfg = dataclasses.replace(cfg, decoder=dec.cfg)
    written = save_flashvsr(args.out, cfg, {"dit": mods["dit"], "lq_proj": mods["lq_proj"], "decoder": dec})
    print(f"wrote {len(written)} files to {args.out}")


if __name__ == "__main__":
    main()
