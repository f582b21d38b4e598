"""Where the peak of GPU memory comes from: replay the CUDA caching allocator's trace of one run.

``peak_attribution(fn)`` runs ``fn`` with the allocator's history on (Python frames only), then replays the trace:
the live bytes after every event, the moment of the peak, and the blocks alive then, grouped by the innermost
frame of the caller's code (``owner``, a path fragment such as ``streamvsr/``) and by the innermost frame of all.
Blocks that were alive before ``fn`` started are one line, ``(before the trace)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def _where(frames: list[dict], owner: str | None) -> str:
    """file:line function of the innermost frame (of ``owner``'s files when given and present)."""
    pick = next((f for f in frames if owner and owner in f.get("filename", "")), frames[0] if frames else None)
    if pick is None:
        return "(no frames)"
    path = pick.get("filename", "?")
    if owner and owner in path:
        path = owner + path.split(owner, 1)[1]
    else:
        path = "/".join(path.split("/")[-3:])  # e.g. torch/nn/functional.py
    return f"{path}:{pick.get('line', '?')} {pick.get('name', '?')}"


def _replay(events: list[dict], before: int) -> tuple[dict[int, dict], int, int, int, int]:
    """Replay ``events`` from ``before`` live bytes: (the blocks alive at the peak, addr -> alloc event; the peak;
    its event index, -1 for the start; the pre-trace bytes still alive there; the number of events replayed).

    An ``alloc`` adds its block; ``free_completed`` (the block is back in the allocator: what
    ``memory_allocated`` counts) removes it. A free of a block allocated before the trace lowers the pre-trace
    bytes. The first pass finds the peak, the second stops there."""

    def run(stop: int | None) -> tuple[dict[int, dict], int, int, int]:
        live: dict[int, dict] = {}
        base = cur = peak = before
        peak_i = -1
        for i, e in enumerate(events if stop is None else events[: stop + 1]):
            act, addr, size = e.get("action"), e.get("addr"), int(e.get("size", 0))
            if act == "alloc":
                live[addr] = e
                cur += size
            elif act == "free_completed":
                if live.pop(addr, None) is None:
                    base -= size
                cur -= size
            else:
                continue
            if cur > peak:
                peak, peak_i = cur, i
        return live, base, peak, peak_i

    _, _, peak, peak_i = run(None)
    live, base, _, _ = run(peak_i) if peak_i >= 0 else ({}, before, 0, 0)
    return live, peak, peak_i, base, len(events)


def replay_peak(events: list[dict], before: int, owner: str | None = "streamvsr/", top: int = 20) -> dict:
    """Replay allocator trace ``events`` (``torch.cuda.memory._snapshot()["device_traces"][dev]``) from ``before``
    live bytes: the peak, and what was alive at it grouped by where it was allocated (see :func:`_replay`)."""
    live, peak, peak_i, peak_base, n = _replay(events, before)
    groups: dict[str, int] = {}
    inner: dict[str, int] = {}
    for e in live.values():
        frames, size = e.get("frames") or [], int(e.get("size", 0))
        where, innermost = _where(frames, owner), _where(frames, None)
        groups[where] = groups.get(where, 0) + size
        inner[innermost] = inner.get(innermost, 0) + size
    gib = 2.0**30
    return {
        "before_gib": before / gib,
        "peak_gib": peak / gib,
        "peak_event": peak_i,
        "events": n,
        "at_peak_before_trace_gib": peak_base / gib,
        "at_peak_by_owner_gib": {k: v / gib for k, v in sorted(groups.items(), key=lambda kv: -kv[1])[:top]},
        "at_peak_by_frame_gib": {k: v / gib for k, v in sorted(inner.items(), key=lambda kv: -kv[1])[:top]},
    }


def peak_attribution(fn: Callable[[], object], owner: str | None = "streamvsr/", top: int = 20) -> dict:
    """Run ``fn`` on the current CUDA device with the allocator's history recorded; see :func:`replay_peak`."""
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.memory._record_memory_history(max_entries=2_000_000, stacks="python")
    try:
        fn()
        torch.cuda.synchronize()
        snap = torch.cuda.memory._snapshot()
    finally:
        torch.cuda.memory._record_memory_history(enabled=None)
    dev = torch.cuda.current_device()
    traces = snap.get("device_traces") or []
    events = traces[dev] if dev < len(traces) else []
    return replay_peak(events, before, owner, top)


def print_attribution(label: str, rep: dict) -> None:
    print(
        f"{label}: peak {rep['peak_gib']:.2f} GiB over {rep['events']} allocator events "
        f"({rep['before_gib']:.2f} GiB alive before; {rep['at_peak_before_trace_gib']:.2f} of it still at the peak)",
        flush=True,
    )
    for k, v in rep["at_peak_by_owner_gib"].items():
        print(f"  {v:7.3f} GiB  {k}", flush=True)
    print("  innermost frames:", flush=True)
    for k, v in list(rep["at_peak_by_frame_gib"].items())[:10]:
        print(f"  {v:7.3f} GiB  {k}", flush=True)
