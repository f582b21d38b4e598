"""Copy a FlashVSR weights folder with its floating-point weights stored as bfloat16 (about half the bytes).

    .venv/bin/python scripts/bf16_copy.py FOLDER OUT_FOLDER

For the device's carry limit: a continuation of stage 3 on a fresh machine (``scripts/default_model_gpu.sh
s3c``) starts from such copies of the generator and the teacher; the recipes load them into float32 modules.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from streamvsr.pipeline.flashvsr_weights import load_flashvsr_folder, save_flashvsr


def bf16_copy(folder: Path, out: Path) -> list[Path]:
    """Write ``out`` (a new folder) with ``folder``'s config and its weights cast to bfloat16."""
    if out.resolve() == folder.resolve():
        raise ValueError("OUT_FOLDER must differ from FOLDER")
    cfg, mods = load_flashvsr_folder(folder)
    modules = {name: mods[name].to(torch.bfloat16) for name in ("dit", "lq_proj", "decoder")}
    context = mods.get("context")
    modules["context"] = None if context is None else context.to(torch.bfloat16)
    return save_flashvsr(out, cfg, modules)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    try:
        written = bf16_copy(args.folder, args.out)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"wrote {args.out}: {sum(p.stat().st_size for p in written) / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
