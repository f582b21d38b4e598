"""Evaluation report: ``results.json``, ``results.md`` (tables), ``results.png`` (bar plots) and
``montage_<sequence>.png`` (side-by-side crops: input nearest-upscaled, each model, GT)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from streamvsr.errors import OutputError

# metric -> (label, higher is better)
LABELS = {
    "psnr_y": ("PSNR-Y (dB)", True),
    "ssim_y": ("SSIM-Y", True),
    "psnr_rgb": ("PSNR-RGB (dB)", True),
    "st_lpips": ("ST-LPIPS", False),
    "tof": ("tOF (px)", False),
    "warp_error": ("warp error", False),
    "niqe": ("NIQE", False),
    "fps": ("fps", True),
    "color_drift": ("colour drift", False),
}
CROP = 192  # montage crop side at output resolution


def to_jsonable(obj: object) -> object:
    """Non-finite floats become None (strict JSON)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    return obj


def write_json(results: object, path: Path) -> None:
    path.write_text(json.dumps(to_jsonable(results), indent=2, allow_nan=False) + "\n")


def _fmt(v: float | None, key: str) -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    digits = {"ssim_y": 4, "st_lpips": 4, "psnr_y": 2, "psnr_rgb": 2}.get(key, 3)
    return f"{v:.{digits}f}"


def markdown(results: list[dict]) -> str:
    """Mean table over models (rows by label; which model and weights each label is, when not obvious),
    then one per-sequence table per metric that any model has."""
    keys = [k for k in LABELS if any(r["mean"].get(k) is not None for r in results)]
    arrows = {k: " ↑" if LABELS[k][1] else " ↓" for k in keys}
    head = "| model | " + " | ".join(LABELS[k][0] + arrows[k] for k in keys) + " |"
    sep = "|---|" + "---|" * len(keys)
    r0 = results[0]
    lines = [f"# Evaluation: x{r0['scale']}, degradation `{r0['degradation']}`, {r0['frames']} frames", "",
             "## Mean over sequences", "", head, sep]  # fmt: skip
    lines += [f"| {r['model']} | " + " | ".join(_fmt(r["mean"][k], k) for k in keys) + " |" for r in results]
    if any(r.get("weights") or r.get("model_name", r["model"]) != r["model"] for r in results):
        lines += ["", "## Models", "", "| label | model | weights |", "|---|---|---|"]
        lines += [f"| {r['model']} | {r.get('model_name', r['model'])} | {r.get('weights') or '–'} |" for r in results]
    seqs = list(r0["sequences"])
    for k in keys:
        if k == "fps":
            continue
        lines += ["", f"## {LABELS[k][0]} per sequence", "", "| sequence | " + " | ".join(r["model"] for r in results)
                  + " |", "|---|" + "---|" * len(results)]  # fmt: skip
        lines += [f"| {s} | " + " | ".join(_fmt(r["sequences"][s][k], k) for r in results) + " |" for s in seqs]
    return "\n".join(lines) + "\n"


def bar_plot(results: list[dict], path: Path) -> None:
    """One bar chart per metric (mean over sequences), models side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in LABELS if any(r["mean"].get(k) is not None for r in results)]
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    names = [r["model"] for r in results]
    colors = [plt.get_cmap("tab10")(i % 10) for i in range(len(names))]
    for ax, k in zip(axes.flat, keys):
        vals = [r["mean"][k] if r["mean"][k] is not None and math.isfinite(r["mean"][k]) else 0 for r in results]
        ax.bar(range(len(names)), vals, color=colors)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(LABELS[k][0] + (" ↑" if LABELS[k][1] else " ↓"), fontsize=10)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _crop_box(img: np.ndarray, side: int) -> tuple[int, int]:
    """Top-left corner of the ``side`` x ``side`` window with the most detail (gradient energy)."""
    g = img.astype(np.float32).mean(-1)
    energy = np.abs(np.diff(g, axis=0))[:, :-1] + np.abs(np.diff(g, axis=1))[:-1, :]
    h, w = g.shape
    best, pos = -1.0, (0, 0)
    step = max(side // 4, 1)
    for y in range(0, max(h - side, 0) + 1, step):
        for x in range(0, max(w - side, 0) + 1, step):
            e = float(energy[y : y + side, x : x + side].sum())
            if e > best:
                best, pos = e, (y, x)
    return pos


def _short(text: str, n: int) -> str:
    """At most ``n`` characters, keeping both ends (labels of two checkpoints often differ at the end)."""
    if len(text) <= n:
        return text
    tail = (n - 2) // 2
    return text[: n - 2 - tail] + ".." + text[len(text) - tail :]


def montage(lq: np.ndarray, sr: dict[str, np.ndarray], gt: np.ndarray | None, scale: int) -> np.ndarray:
    """Side-by-side crops with labels: input (nearest x scale), each model, GT."""
    from PIL import Image, ImageDraw

    ref = gt if gt is not None else next(iter(sr.values()))
    h, w = ref.shape[:2]
    side = min(CROP, h, w) // scale * scale
    y, x = _crop_box(ref, side)
    y, x = y // scale * scale, x // scale * scale
    tiles = [("input", np.repeat(np.repeat(lq, scale, 0), scale, 1)[y : y + side, x : x + side])]
    tiles += [(name, img[y : y + side, x : x + side]) for name, img in sr.items()]
    if gt is not None:
        tiles.append(("GT", gt[y : y + side, x : x + side]))
    zoom = max(1, 192 // max(side, 1))
    label_h, gap = 16, 4
    tw = side * zoom
    canvas = Image.new("RGB", (len(tiles) * (tw + gap) - gap, tw + label_h), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (name, tile) in enumerate(tiles):
        img = Image.fromarray(np.ascontiguousarray(tile)).resize((tw, tw), Image.Resampling.NEAREST)
        canvas.paste(img, (i * (tw + gap), 0))
        draw.text((i * (tw + gap) + 2, tw + 2), _short(name, max(8, (tw - 4) // 6)), fill="black")
    return np.asarray(canvas)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def write_report(
    results: list[dict],
    report_dir: Path,
    showcase: dict[str, tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None]],
    scale: int,
) -> None:
    """Write results.json, results.md, results.png and one montage per sequence into ``report_dir``."""
    from PIL import Image

    try:
        report_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create report folder {report_dir}: {e}") from e
    write_json(results, report_dir / "results.json")
    (report_dir / "results.md").write_text(markdown(results))
    bar_plot(results, report_dir / "results.png")
    for seq, (lq, sr, gt) in showcase.items():
        Image.fromarray(montage(lq, sr, gt, scale)).save(report_dir / f"montage_{_safe(seq)}.png")
