"""Command-line entry points of the training recipes (``python -m streamvsr.recipes.<name>`` and torchrun)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence

from streamvsr.errors import StreamVSRError
from streamvsr.train.distributed import DistInfo, barrier, cleanup, init_distributed

__all__ = ["cli", "run_main"]

TrainFn = Callable[[argparse.Namespace, DistInfo, Callable[[dict], None] | None], dict]


def run_main(
    parser: argparse.ArgumentParser,
    train_fn: TrainFn,
    argv: Sequence[str] | None,
    callback: Callable[[dict], None] | None,
    require_data: bool = True,
) -> dict:
    """Parse ``argv``, set up the (distributed) process, run ``train_fn`` and clean up; returns its summary.
    With ``require_data`` a missing ``--data`` is a usage error (unless ``--export-only``)."""
    args = parser.parse_args(argv)
    if require_data and not args.data and not getattr(args, "export_only", False):
        raise SystemExit(f"{parser.prog}: give --data")
    info = init_distributed(args.device)
    try:
        out = train_fn(args, info, callback)
        # every rank is past its last collective before any tears the group down (once, not reproduced since,
        # rank 1 of a 2-rank gloo test aborted at exit: "terminate called without an active exception")
        barrier()
        return out
    finally:
        cleanup()


def cli(main_fn: Callable[..., dict]) -> None:
    """``python -m`` entry: JSON log lines on stdout (rank 0), one-line errors on stderr."""
    try:
        rank0 = os.environ.get("RANK", "0") == "0"
        main_fn(callback=lambda rec: print(json.dumps(rec), flush=True) if rank0 else None)
    except StreamVSRError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
