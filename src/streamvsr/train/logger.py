"""JSON-lines training log (``log.jsonl`` in the run directory), written by rank 0 only."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from streamvsr.train.checkpoint import atomic_write_bytes

__all__ = ["JSONLLogger", "Throughput", "gpu_memory_stats"]


def _clean(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        v = v.item() if v.numel() == 1 else v.tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


class JSONLLogger:
    """Append one JSON object per line; flushes every line so a crash loses nothing already logged.

    resume_step: when resuming from a checkpoint at that step, lines with a larger ``step`` (written after
    the checkpoint by the interrupted run) are dropped, so the log equals that of an uninterrupted run.
    callback: also receives every record (for progress bars); it is called on every rank.
    """

    def __init__(
        self,
        path: str | Path,
        enabled: bool = True,
        resume_step: int | None = None,
        callback: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self.callback = callback
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if resume_step is not None and self.path.exists():
                self._truncate_after(resume_step)
            elif resume_step is None and self.path.exists():
                self.path.unlink()  # a fresh run starts a fresh log

    def _truncate_after(self, step: int) -> None:
        kept = []
        for line in self.path.read_text().splitlines():
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line from a crash
            if int(rec.get("step", 0)) <= step:
                kept.append(line)
        atomic_write_bytes(self.path, "".join(k + "\n" for k in kept).encode())

    def log(self, record: dict[str, Any]) -> None:
        rec = {k: _clean(v) for k, v in record.items()}
        rec.setdefault("time", time.time())
        if self.callback is not None:
            self.callback(rec)
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(rec) + "\n")

    def read(self) -> list[dict[str, Any]]:
        """All records so far."""
        if not self.path.exists():
            return []
        return [json.loads(x) for x in self.path.read_text().splitlines() if x.strip()]


class Throughput:
    """Samples per second between successive calls of :meth:`rate`."""

    def __init__(self) -> None:
        self._t = time.perf_counter()
        self._n = 0

    def add(self, n: int) -> None:
        self._n += n

    def rate(self) -> float:
        now = time.perf_counter()
        r = self._n / max(now - self._t, 1e-9)
        self._t, self._n = now, 0
        return r


def gpu_memory_stats(device: torch.device) -> dict[str, float]:
    """Peak allocated / reserved GPU memory in GiB (empty on CPU)."""
    if device.type != "cuda":
        return {}
    return {
        "gpu_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30,
        "gpu_reserved_gib": torch.cuda.max_memory_reserved(device) / 2**30,
    }
