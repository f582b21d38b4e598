"""`streamvsr eval` with the FlashVSR TCDecoder's upsampling switched to MODE (an experiment, not an option).

    .venv/bin/python scripts/eval_upsample_mode.py MODE eval --model flashvsr=DIR --data ... [eval options]

MODE is "nearest" or "bilinear" (``TCDecoderConfig.upsample``), applied to a model trained with the other one:
does the hatching on flat areas come from the nearest upsampling of the latent grid? Results of 2026-11-26
(late): docs/training.md.
"""

from __future__ import annotations

import dataclasses
import sys

import torch

from streamvsr.cli.main import cli
from streamvsr.pipeline import registry


def main() -> None:
    mode = sys.argv[1]
    if mode not in ("nearest", "bilinear"):
        raise SystemExit(f"MODE must be nearest or bilinear, not {mode!r}")
    entry = registry._REGISTRY["flashvsr"]

    def factory(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        model = entry.factory(*args, **kwargs)
        for m in model.decoder.modules():
            if isinstance(m, torch.nn.Upsample):
                m.mode = mode
        return model

    registry._REGISTRY["flashvsr"] = dataclasses.replace(entry, factory=factory)
    cli.main(sys.argv[2:])


if __name__ == "__main__":
    main()
