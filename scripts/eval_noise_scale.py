"""`streamvsr eval` with FlashVSR's input noise scaled by S (an experiment, not an option of the pipeline).

    .venv/bin/python scripts/eval_noise_scale.py S eval --model flashvsr=DIR --data ... [eval options]

Does the one-step model's output depend on its noise? S = 0 feeds zeros instead of noise; S = 1 is the model as
shipped. Results of 2026-11-26 (S = 0, 0.5): docs/training.md.
"""

from __future__ import annotations

import sys

from streamvsr.cli.main import cli
from streamvsr.pipeline import flashvsr


def main() -> None:
    scale = float(sys.argv[1])
    draw = flashvsr.FlashVSRUpscaler._draw_noise

    def scaled(self, a, b, shape):  # noqa: ANN001, ANN202
        return draw(self, a, b, shape) * scale

    flashvsr.FlashVSRUpscaler._draw_noise = scaled  # type: ignore[method-assign]
    cli.main(sys.argv[2:])


if __name__ == "__main__":
    main()
