"""Evaluation runner: stream every sequence through one or more models and measure them.

For each sequence the LQ input is synthesised once (:mod:`streamvsr.eval.data`), the reference
data shared by all models (bicubic-upscaled input, GT optical flows) is computed once, then each
model streams the LQ frames through :class:`~streamvsr.pipeline.engine.Engine` one frame per
``push`` (then ``flush``), and its output, rounded to uint8, is measured.

Result (one dict per model; ``None`` where a metric does not apply, e.g. without GT)::

    {"model": label, "model_name": str, "weights": absolute folder | None, "options": {model options},
     "degradation": str, "scale": int, "frames": int,
     "mean": {psnr_y, ssim_y, psnr_rgb, st_lpips, tof, warp_error, niqe, fps, color_drift},
     "sequences": {name: {same keys}}}

Averages: per sequence the mean over frames (over frame pairs for tOF and warping error), then
the mean over sequences; ``fps`` overall is total frames / total model time (push + flush,
device-synchronised; data loading and metrics excluded). PSNR/SSIM crop ``scale`` border pixels
(Y of a single-channel source is its grey level, see :mod:`streamvsr.eval.metrics`);
ST-LPIPS, NIQE, tOF, warping error and colour drift use whole frames.
"""

from __future__ import annotations

import inspect
import math
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from streamvsr.errors import InputError, ModelError
from streamvsr.eval import metrics as M
from streamvsr.eval import temporal
from streamvsr.eval.data import (
    DEGRADATIONS,
    bicubic_up,
    find_sequences,
    frames_to_tensor,
    iter_sequences,
    tensor_to_frames,
)
from streamvsr.pipeline.protocol import StreamingModel

METRICS = ("psnr_y", "ssim_y", "psnr_rgb", "st_lpips", "tof", "warp_error", "niqe", "fps", "color_drift")
FULL_REFERENCE = ("psnr_y", "ssim_y", "psnr_rgb", "st_lpips", "tof")
ModelFactory = Callable[[], StreamingModel]
Progress = Callable[[dict], None]


@dataclass
class _Reference:
    """What every model of one sequence is compared with."""

    gt: list[np.ndarray] | None
    lq: list[np.ndarray]
    up: list[np.ndarray]  # bicubic-upscaled LQ
    flow_fw: list[np.ndarray] = field(default_factory=list)  # GT flow t-1 -> t, per pair (for tOF)
    warp: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (backward flow, valid mask)


@dataclass
class _Showcase:
    """Frames kept for the montage of one sequence."""

    lq: np.ndarray
    gt: np.ndarray | None
    sr: dict[str, np.ndarray] = field(default_factory=dict)


def _reference(gt: list | None, lq: list, scale: int, wanted: set[str]) -> _Reference:
    ref = _Reference(gt, lq, [bicubic_up(f, scale) for f in lq])
    frames = gt if gt is not None else ref.up
    for prev, cur in zip(frames[:-1], frames[1:]):
        if "tof" in wanted and gt is not None:
            ref.flow_fw.append(temporal.optical_flow(prev, cur))
        if "warp_error" in wanted:
            bw = temporal.optical_flow(cur, prev)
            fw = ref.flow_fw[-1] if ref.flow_fw and gt is not None else temporal.optical_flow(prev, cur)
            ref.warp.append((bw, temporal.valid_mask(bw, fw)))
    return ref


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_model(model: StreamingModel, lq: list[np.ndarray], device: torch.device) -> tuple[list[np.ndarray], float]:
    """Stream ``lq`` frames one by one through ``model``; return uint8 outputs and model seconds."""
    from streamvsr.pipeline.engine import Engine

    engine = Engine(model, device)
    out: list[np.ndarray] = []
    seconds = 0.0
    for f in lq:
        x = frames_to_tensor([f])
        _sync(device)
        t0 = time.perf_counter()
        y = engine.push(x)
        _sync(device)
        seconds += time.perf_counter() - t0
        out += tensor_to_frames(y)
    t0 = time.perf_counter()
    y = engine.flush()
    _sync(device)
    seconds += time.perf_counter() - t0
    out += tensor_to_frames(y)
    if len(out) != len(lq):
        raise ModelError(f"model {model.spec.name!r} returned {len(out)} frames for {len(lq)} inputs")
    return out, seconds


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(vals)) if vals else None


def _st_lpips_many(
    lpips: torch.nn.Module, gt: list[np.ndarray], outputs: dict[str, list[np.ndarray]], device: torch.device
) -> dict[str, float | None]:
    """Mean ST-LPIPS of each model's frames against the GT (GT features computed once per frame)."""
    vals: dict[str, list[float]] = {name: [] for name in outputs}
    with torch.inference_mode():
        for i, g in enumerate(gt):
            fg = lpips.features(frames_to_tensor([g]).to(device))
            for name, sr in outputs.items():
                vals[name].append(float(lpips.distance(lpips.features(frames_to_tensor([sr[i]]).to(device)), fg)))
    return {name: _mean(v) for name, v in vals.items()}


def _sequence_metrics(
    sr: list[np.ndarray], ref: _Reference, scale: int, wanted: set[str], gray: bool = False
) -> dict[str, float | None]:
    res: dict[str, float | None] = dict.fromkeys(METRICS)
    gt = ref.gt
    if gt is not None:
        if sr[0].shape != gt[0].shape:
            raise ModelError(f"output size {sr[0].shape[:2]} differs from the ground truth {gt[0].shape[:2]}")
        if "psnr_y" in wanted:
            res["psnr_y"] = _mean([M.psnr_y(s, g, scale, gray) for s, g in zip(sr, gt)])
        if "ssim_y" in wanted:
            res["ssim_y"] = _mean([M.ssim_y(s, g, scale, gray) for s, g in zip(sr, gt)])
        if "psnr_rgb" in wanted:
            res["psnr_rgb"] = _mean([M.psnr_rgb(s, g, scale) for s, g in zip(sr, gt)])
        if ref.flow_fw:
            res["tof"] = _mean(
                [temporal.tof_from_flows(f, temporal.optical_flow(a, b)) for f, a, b in zip(ref.flow_fw, sr, sr[1:])]
            )
    if ref.warp:
        res["warp_error"] = _mean(
            [temporal.warp_error_with_flow(a, b, bw, mask) for (bw, mask), a, b in zip(ref.warp, sr, sr[1:])]
        )
    if "niqe" in wanted:
        res["niqe"] = _mean([M.niqe(s) if min(s.shape[:2]) >= 96 else None for s in sr])
    if "color_drift" in wanted:
        res["color_drift"] = _mean([M.color_drift(s, u, scale) for s, u in zip(sr, ref.up)])
    return res


def _wanted(metrics: Collection[str] | None, degradation: str) -> set[str]:
    wanted = set(METRICS if metrics is None else metrics)
    unknown = wanted - set(METRICS)
    if unknown:
        raise InputError(f"unknown metrics {sorted(unknown)}; known: {', '.join(METRICS)}")
    if degradation == "none":
        wanted -= set(FULL_REFERENCE)
    return wanted | {"fps"}


@dataclass
class _Entry:
    """One model of a run: its unique label (tables, JSON, montages), registry name, weights and factory."""

    label: str
    name: str
    weights: str | None
    factory: ModelFactory
    options: dict = field(default_factory=dict)


def model_labels(names: Sequence[str], weights: Sequence[str | Path | None] | None = None) -> list[str]:
    """Unique labels: the name when it appears once, else ``name@<weights folder>``, the folder named by as
    many of its last path parts as tell the models of that name apart (``flashvsr@a/ckpt``,
    ``flashvsr@b/ckpt``); the bare name without weights; a label still taken gets ``#2``, ``#3``, ..."""
    w = list(weights or [])
    w += [None] * (len(names) - len(w))
    counts = Counter(names)
    parts = [Path(f).parts or Path(f).resolve().parts if f is not None else () for f in w]
    depth: dict[str, int] = {}  # path parts that tell each name's folders apart
    for name in counts:
        mine = [parts[i] for i, n in enumerate(names) if n == name and w[i] is not None]
        d, longest = 1, max((len(p) for p in mine), default=1)
        while d < longest and len({p[-d:] for p in mine}) < len(set(mine)):
            d += 1
        depth[name] = d
    labels: list[str] = []
    for name, folder, pp in zip(names, w, parts):
        base = name
        if counts[name] > 1 and folder is not None:
            base = f"{name}@{'/'.join(pp[-depth[name] :])}"
        label, k = base, 1
        while label in labels:
            k += 1
            label = f"{base}#{k}"
        labels.append(label)
    return labels


def _check_takes_weights(name: str, weights: str | Path) -> None:
    """A registry model whose factory has no ``weights`` parameter would silently ignore a weights folder."""
    from streamvsr.pipeline.registry import available_models

    entry = next((e for e in available_models() if e.name == name), None)
    if entry is not None and not entry.needs_weights and "weights" not in inspect.signature(entry.factory).parameters:
        raise ModelError(f"model {name!r} takes no weights folder, got {str(weights)!r} (use --model NAME=DIR)")


def _entries(
    models: Sequence[str | tuple[str, ModelFactory]],
    weights: Sequence[str | Path | None] | None,
    device: torch.device,
    dtype: torch.dtype | None,
    scale: int,
    model_options: Mapping[str, Mapping[str, object]] | None = None,
) -> list[_Entry]:
    weights = list(weights or [])
    if len(weights) > len(models):
        raise InputError(f"{len(weights)} weights folders for {len(models)} models")
    weights += [None] * (len(models) - len(weights))
    names = [m if isinstance(m, str) else m[0] for m in models]
    for m, w in zip(models, weights):
        if w is not None and not isinstance(m, str):
            raise InputError(f"model {m[0]!r} is given as a factory; it takes no weights folder")
    labels = model_labels(names, weights)
    out: list[_Entry] = []
    for m, w, label in zip(models, weights, labels):
        if isinstance(m, str):
            from streamvsr.pipeline.registry import load_model

            if w is not None:
                _check_takes_weights(m, w)
            opts = dict((model_options or {}).get(m, {}))
            factory = partial(load_model, m, weights=w, device=device, dtype=dtype, scale=scale, **opts)
            out.append(_Entry(label, m, None if w is None else str(Path(w).resolve()), factory, opts))
        else:
            out.append(_Entry(label, m[0], None, m[1]))
    return out


def evaluate_many(
    models: Sequence[str | tuple[str, ModelFactory]],
    data_dir: str | Path,
    degradation: str = "bi",
    scale: int = 4,
    max_frames: int | None = None,
    report_dir: str | Path | None = None,
    progress: Progress | None = None,
    *,
    weights: Sequence[str | Path | None] | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    metrics: Collection[str] | None = None,
    layout: str = "auto",
    model_options: Mapping[str, Mapping[str, object]] | None = None,
) -> list[dict]:
    """Evaluate several models on the same data in one pass; one result dict per model.

    ``models`` are registry names (built with ``weights[i]``, ``device``, ``dtype``) or
    ``(name, factory)`` pairs; a name may repeat (e.g. two checkpoints), each entry is labelled as
    :func:`model_labels` says. ``metrics`` restricts what is measured (fps always is).
    ``model_options``: options per registry name, passed to :func:`~streamvsr.pipeline.registry.load_model`
    (e.g. ``{"flashvsr": {"detail": 0.5}}``) and recorded in each result.
    """
    if degradation not in DEGRADATIONS:
        raise InputError(f"unknown degradation {degradation!r}; use one of {', '.join(DEGRADATIONS)}")
    device = torch.device(device)
    wanted = _wanted(metrics, degradation)
    entries = _entries(models, weights, device, dtype, scale, model_options)
    sources = find_sequences(data_dir, layout)
    built = [(e.label, e.factory()) for e in entries]
    for name, model in built:
        if model.spec.scale != scale:
            raise ModelError(f"model {name!r} upscales x{model.spec.scale}, but the evaluation is x{scale}")
    lpips = None
    if "st_lpips" in wanted:
        from streamvsr.eval.stlpips import load_stlpips

        lpips = load_stlpips(device)

    per_seq: dict[str, dict[str, dict]] = {name: {} for name, _ in built}
    totals = {name: [0, 0.0] for name, _ in built}  # frames, seconds
    showcase: dict[str, _Showcase] = {}
    for i, (seq, gt, lq, gray) in enumerate(iter_sequences(sources, degradation, scale, max_frames)):
        ref = _reference(gt, lq, scale, wanted)
        mid = len(lq) // 2
        show = showcase[seq] = _Showcase(lq[mid], gt[mid] if gt is not None else None)
        outputs: dict[str, list[np.ndarray]] = {}
        for name, model in built:
            if progress is not None:
                progress({"model": name, "sequence": seq, "index": i, "total": len(sources), "frames": len(lq)})
            outputs[name], seconds = run_model(model, lq, device)
            res = _sequence_metrics(outputs[name], ref, scale, wanted, gray)
            res["fps"] = len(lq) / seconds if seconds > 0 else None
            per_seq[name][seq] = res
            totals[name][0] += len(lq)
            totals[name][1] += seconds
            show.sr[name] = outputs[name][mid]
        if lpips is not None and gt is not None:
            for name, v in _st_lpips_many(lpips, gt, outputs, device).items():
                per_seq[name][seq]["st_lpips"] = v

    results = []
    for e in entries:
        name = e.label
        seqs = per_seq[name]
        mean = {k: _mean([s[k] for s in seqs.values()]) for k in METRICS}
        frames, seconds = totals[name]
        mean["fps"] = frames / seconds if seconds > 0 else None
        results.append(
            {
                "model": name,
                "model_name": e.name,
                "weights": e.weights,
                "options": e.options,
                "degradation": degradation,
                "scale": scale,
                "frames": frames,
                "mean": mean,
                "sequences": seqs,
            }  # fmt: skip
        )
    if report_dir is not None:
        from streamvsr.eval.report import write_report

        write_report(results, Path(report_dir), {k: (v.lq, v.sr, v.gt) for k, v in showcase.items()}, scale)
    return results


def evaluate(
    model_factory: ModelFactory | str,
    data_dir: str | Path,
    degradation: str = "bi",
    scale: int = 4,
    max_frames: int | None = None,
    report_dir: str | Path | None = None,
    progress: Progress | None = None,
    *,
    name: str | None = None,
    device: str | torch.device = "cpu",
    metrics: Collection[str] | None = None,
    layout: str = "auto",
) -> dict:
    """Evaluate one streaming model (a factory, or a registry name) on ``data_dir``; see module doc."""
    if isinstance(model_factory, str):
        entry: str | tuple[str, ModelFactory] = model_factory
    else:
        if name is None:
            probe = model_factory()
            name = probe.spec.name
            entry = (name, lambda: probe)
        else:
            entry = (name, model_factory)
    return evaluate_many(
        [entry], data_dir, degradation, scale, max_frames, report_dir, progress,
        device=device, metrics=metrics, layout=layout,
    )[0]  # fmt: skip
