"""Timing of GPU work for the benchmarks: wall time per call between device synchronisations."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def timed(fn: Callable[[], object], reps: int, warmup: int = 1) -> float:
    """Seconds per call of ``fn`` over ``reps`` calls, after ``warmup`` untimed calls; the device is
    synchronised before and after the timed calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / reps
