"""Many videos, one model load: the work list behind ``streamvsr batch``.

Under ``torchrun --nproc_per_node=N`` each rank takes every N-th video (one stream per GPU, the model
loaded once per rank); outputs that already exist are skipped, so an interrupted batch resumes where it
stopped (outputs are written atomically, so a file that exists is complete).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".y4m", ".gif")


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; (0, 1) without it."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def worker_threads(requested: int | None = None, cpus: int | None = None, local_world: int | None = None) -> int | None:
    """CPU threads for torch and for the video encoder of this process, each: ``requested`` if given; under
    torchrun with several workers on this host (LOCAL_WORLD_SIZE > 1) half of the worker's share of the cores,
    ``cpus // local_world // 2`` (at least 1), so that torch and the encoder together fill the share; otherwise
    None (library defaults).

    torchrun sets OMP_NUM_THREADS=1 for several workers, and each video encoder starts about 1.5 threads per
    core. Two workers of `streamvsr batch` on a 32-core host with 2 GPUs (docs/performance.md), against one:
    1.11x with those defaults (H100), 1.75x with 8 + 8 threads each (H100) and 0.88x with 16 + 16 (H200).
    """
    if requested is not None:
        return requested
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", 1)) if local_world is None else local_world
    if local_world <= 1:
        return None
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cpus // local_world // 2)


def plan_jobs(in_dir: Path, out_dir: Path, suffix: str | None = None, rank: int = 0, world: int = 1) -> list[Job]:
    """Videos of ``in_dir`` (sorted) for this rank, with their outputs in ``out_dir``; done ones dropped."""
    files = sorted(p for p in in_dir.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    jobs = [Job(p, out_dir / (p.stem + (suffix or p.suffix))) for p in files]
    return [j for i, j in enumerate(jobs) if i % world == rank and not j.dst.exists()]


def run_jobs(
    jobs: list[Job], run_one: Callable[[Job], None], on_error: Callable[[Job, Exception], None]
) -> tuple[int, int]:
    """Run every job; a failing video is reported and skipped. Returns (done, failed)."""
    done = failed = 0
    for job in jobs:
        try:
            run_one(job)
            done += 1
        except (Exception, KeyboardInterrupt) as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            on_error(job, exc)
            failed += 1
    return done, failed
