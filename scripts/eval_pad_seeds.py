"""The default model on DAVIS val (BI x4, 10 frames a clip) for both paddings and stream noise seeds 1 and 2.

    .venv/bin/python scripts/eval_pad_seeds.py OUT.json

How much tOF moves with the noise seed against how much it moves with ``pad_to`` (results of the ninth session of
2026-11-27: docs/default_model_card.md).
"""

from __future__ import annotations

import json
import sys

from streamvsr.eval.runner import evaluate_many


def main() -> None:
    out = {}
    for pad in ("windows", "tokens"):
        for seed in (1, 2):
            r = evaluate_many(
                ["flashvsr-fast"],
                "../shared/data/val/davis2016",
                max_frames=10,
                metrics=["psnr_y", "tof"],
                model_options={"flashvsr-fast": {"pad_to": pad, "seed": seed}},
            )
            out[f"{pad}-{seed}"] = r[0]["mean"]
            print(pad, seed, {k: round(v, 4) for k, v in r[0]["mean"].items() if v is not None}, flush=True)
    with open(sys.argv[1], "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
