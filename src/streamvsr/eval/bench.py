"""Speed and memory benchmark of a streaming model.

Frames (a moving synthetic pattern of the requested size) are pushed one at a time through
:class:`~streamvsr.pipeline.engine.Engine`, as fast as the model takes them, then the stream is
flushed. Measured:

* ``fps``: input frames / wall time from the first push to the end of the flush;
* per-frame latency: time from pushing frame i to receiving output i (mean, p50, p95, max);
  for a model with look-ahead this includes waiting for the later frames it needs;
* ``peak_rss_mb``: peak resident memory of this process (psutil, sampled every 5 ms) during the run;
* ``peak_cuda_mb``: ``torch.cuda.max_memory_allocated`` during the run (CUDA devices only).

``warmup`` frames are streamed and flushed first (not measured) so one-off costs (kernel selection,
compilation, allocator growth) stay out of the numbers. The default (``None``) is the model's look-ahead plus
16 frames: a streaming model's first calls differ from its steady ones (FlashVSR's first DiT call covers 21
frames, then the KV cache grows), so a shorter warm-up leaves compilation inside the measured run.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from streamvsr.pipeline.protocol import StreamingModel


@dataclass
class BenchResult:
    model: str
    width: int
    height: int
    scale: int
    frames: int
    device: str
    dtype: str | None
    latency_frames: int  # the model's declared look-ahead
    fps: float
    seconds: float
    latency_ms_mean: float
    latency_ms_p50: float
    latency_ms_p95: float
    latency_ms_max: float
    peak_rss_mb: float
    peak_cuda_mb: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def synthetic_frame(i: int, width: int, height: int) -> torch.Tensor:
    """A deterministic moving colour pattern: ``(1, 3, H, W)`` in [0, 1]."""
    y = torch.linspace(0, 1, height).view(height, 1)
    x = torch.linspace(0, 1, width).view(1, width)
    t = 0.05 * i
    r = 0.5 + 0.5 * torch.sin(2 * math.pi * (3 * x + t))
    g = 0.5 + 0.5 * torch.sin(2 * math.pi * (4 * y - t))
    b = 0.5 + 0.5 * torch.sin(2 * math.pi * (5 * (x + y) + 2 * t))
    return torch.stack([r * torch.ones_like(y), g * torch.ones_like(x), b]).unsqueeze(0)  # (1, 3, H, W)


class _RSSSampler:
    """Samples this process's RSS in a background thread; ``peak`` is the max seen (bytes)."""

    def __init__(self, interval: float = 0.005):
        import psutil

        self._proc = psutil.Process()
        self.interval = interval
        self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> _RSSSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _stream(model: StreamingModel, device: torch.device, inputs: list[torch.Tensor]) -> tuple[list, list, float]:
    from streamvsr.pipeline.engine import Engine

    engine = Engine(model, device)
    t_in: list[float] = []
    t_out: list[float] = []
    _sync(device)
    start = time.perf_counter()
    for x in inputs:
        t_in.append(time.perf_counter())
        y = engine.push(x)
        _sync(device)
        now = time.perf_counter()
        t_out += [now] * y.shape[0]
    y = engine.flush()
    _sync(device)
    now = time.perf_counter()
    t_out += [now] * y.shape[0]
    return t_in, t_out, now - start


def benchmark(
    model: StreamingModel,
    width: int,
    height: int,
    frames: int,
    device: str | torch.device = "cpu",
    warmup: int | None = None,
    name: str | None = None,
    dtype: torch.dtype | None = None,
) -> BenchResult:
    """Stream ``frames`` synthetic ``width x height`` frames through ``model`` and time it."""
    if frames < 1 or width < 1 or height < 1:
        raise ValueError(f"need frames, width and height >= 1, got {frames}, {width}, {height}")
    device = torch.device(device)
    inputs = [synthetic_frame(i, width, height).to(device) for i in range(frames)]
    if warmup is None:
        warmup = model.spec.latency + 16
    if warmup > 0:
        extra = [synthetic_frame(frames + i, width, height).to(device) for i in range(max(0, warmup - frames))]
        _stream(model, device, (inputs + extra)[:warmup])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with _RSSSampler() as rss:
        t_in, t_out, seconds = _stream(model, device, inputs)
    lat = (np.array(t_out) - np.array(t_in)) * 1000.0  # ms, output i vs input i
    if dtype is None:  # the dtype the model chose for itself, where it says
        own = getattr(model, "dtype", None)
        dtype = own if isinstance(own, torch.dtype) else None
    return BenchResult(
        model=name or model.spec.name,
        width=width,
        height=height,
        scale=model.spec.scale,
        frames=frames,
        device=str(device),
        dtype=None if dtype is None else str(dtype).removeprefix("torch."),
        latency_frames=model.spec.latency,
        fps=frames / seconds,
        seconds=seconds,
        latency_ms_mean=float(lat.mean()),
        latency_ms_p50=float(np.percentile(lat, 50)),
        latency_ms_p95=float(np.percentile(lat, 95)),
        latency_ms_max=float(lat.max()),
        peak_rss_mb=rss.peak / 2**20,
        peak_cuda_mb=torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
    )


def format_table(results: list[BenchResult]) -> str:
    """A plain-text table of benchmark results."""
    head = ["model", "size", "frames", "fps", "lat mean ms", "lat p95 ms", "lat max ms", "RSS MB", "CUDA MB"]
    rows = [
        [
            r.model,
            f"{r.width}x{r.height}",
            str(r.frames),
            f"{r.fps:.2f}",
            f"{r.latency_ms_mean:.1f}",
            f"{r.latency_ms_p95:.1f}",
            f"{r.latency_ms_max:.1f}",
            f"{r.peak_rss_mb:.0f}",
            "–" if r.peak_cuda_mb is None else f"{r.peak_cuda_mb:.0f}",
        ]
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)
