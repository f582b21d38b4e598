"""Stage 2: block-sparse causal adaptation of the stage-1 model (flow matching, video only).

    python -m streamvsr.recipes.stage2_sparse_causal --run-dir runs/s2 --size small --init runs/s1 \\
        --ae runs/ae/export --data ../shared/data/train --max-samples 10000
    torchrun --nproc_per_node=N -m streamvsr.recipes.stage2_sparse_causal ...   # --parallel fsdp for large sizes

What changes from stage 1 ([FlashVSR] §3.2 Stage 2, spec §5): attention becomes the inference attention,
locality-constrained block-sparse attention over (2, 8, 8)-token windows with the streaming causal window mask
(spec §1.9, §1.10): the first 3 windows (6 latents, DiT call 0) see each other, every later window i sees windows
i - kv_windows .. i (the KV cache of the pipeline plus itself); top-k block selection on mean-pooled q/k, local
mask of ``local_range`` blocks. A whole clip runs in one forward with this window mask, which gives exactly the
pipeline's chunk-by-chunk result with the KV cache (``WanDiT.forward(causal=True)``; tested against the
streaming upscaler in tests/test_recipes_flashvsr.py). The LQ projector keeps the config's (causal) semantics.
Video only; clips of ``--clip-len = 1 + 8k >= 25`` LR frames and crops that are multiples of 128.

Note on sparsity: the top-k budget scales with the output area (spec §1.10), so crops of 256-512 px keep almost
every block (the "dense regime"); selection bites at the paper's 768x1280 training size.

The loss, timestep schedule, checkpoints, logs and export are those of stage 1 (``stage1_teacher``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from streamvsr.recipes.entry import cli, run_main
from streamvsr.recipes.stage1_teacher import train_flow_matching
from streamvsr.train.distributed import DistInfo
from streamvsr.train.flashvsr_common import add_common_args, add_dit_args
from streamvsr.train.recipe_utils import add_ae_arg

RECIPE = "stage2_sparse_causal"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stage2_sparse_causal", description=__doc__.split("\n")[0])
    add_common_args(p, clip_len=41, crop=256, batch_size=4, lr=5e-5)
    add_dit_args(p)
    add_ae_arg(p)
    return p


def train(args: argparse.Namespace, info: DistInfo, callback: Callable[[dict], None] | None = None) -> dict:
    return train_flow_matching(args, info, RECIPE, windowed=True, callback=callback)


def main(argv: Sequence[str] | None = None, callback: Callable[[dict], None] | None = None) -> dict:
    """Entry point for ``python -m`` and torchrun; returns the summary (rank 0's view)."""
    return run_main(build_parser(), train, argv, callback)


if __name__ == "__main__":
    cli(main)
