"""File upscaling end to end (decode, model, encode) with FlashVSR's FP8 variants, repeated and interleaved.

Built for the open question of docs/performance.md (session "kernels" of 2026-11-26, call 27): one CLI run with
the FFN's GELU fused into ``ffn.2``'s FP8 quantisation wrote 44.27 fps where the seven-linear ``--fp8`` wrote
50.76, and the next run 50.85. Each variant here upscales the same synthetic H.264 clip through
:func:`~streamvsr.pipeline.run.upscale_file` (what the CLI runs), the variants taking turns, so that a slow machine
or a slow moment shows in every variant alike. Reported per run: the rate from frame ``--steady-from`` on (start-up
excluded) and the whole run's fps.

Variants: ``bf16``; ``fp8`` (the seven block linears but ``ffn.2``, the CLI's ``--fp8`` until the evening of
2026-11-26); ``fp8-gelu`` (all eight, the GELU fused into ``ffn.2``'s quantisation: the CLI's ``--fp8`` since).

    python3 scripts/make_random_model.py /tmp/w13 --size official-1.3b --device cuda
    python3 bench/e2e_fp8.py --weights /tmp/w13 --frames 3200 --presets veryfast,medium --repeats 2 --json e2e.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from streamvsr.models.flashvsr.fp8 import FAST_INCLUDE, convert_dit_linears_to_fp8
from streamvsr.pipeline import flashvsr as flashvsr_pipeline
from streamvsr.pipeline.registry import load_model
from streamvsr.pipeline.run import EncodeOptions, upscale_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from multigpu import write_video  # noqa: E402

VARIANTS = ("bf16", "fp8", "fp8-gelu")


def build(variant: str, weights: str, device: torch.device, compile_model: bool):  # noqa: ANN201
    """The upscaler of one variant, converted before it is compiled (as ``load_model(compile=True)`` does)."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    up = load_model("flashvsr", weights=weights, device=device, dtype=dtype, fp8=variant == "fp8-gelu")
    if variant == "fp8":
        convert_dit_linears_to_fp8(up.dit, FAST_INCLUDE)
    if compile_model:
        flashvsr_pipeline.compile_dit(up.dit)
        flashvsr_pipeline.compile_decoder(up.decoder)
    return up


def steady_rate(marks: list[tuple[int, float]], start: int) -> float | None:
    """Frames per second between the first progress mark at or after frame ``start`` and the last one."""
    later = [m for m in marks if m[0] >= start]
    if len(later) < 2 or later[-1][1] <= later[0][1]:
        return None
    return (later[-1][0] - later[0][0]) / (later[-1][1] - later[0][1])


def run_once(up, src: Path, dst: Path, device: torch.device, preset: str) -> tuple[float, list, int]:  # noqa: ANN001
    """One file run: (whole-run fps, the (frames, elapsed s) progress marks, frames written)."""
    marks: list[tuple[int, float]] = []
    enc = EncodeOptions(options={"preset": preset}, overwrite=True)
    res = upscale_file(src, dst, up, device=device, encode=enc, progress=lambda p: marks.append((p.frames, p.elapsed)))
    return res.frames / res.seconds, marks, res.frames


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="an official-layout FlashVSR folder (e.g. random weights)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--frames", type=int, default=3200)
    p.add_argument("--size", default="192x352", help="input HxW (output x4)")
    p.add_argument("--presets", default="veryfast", help="x264 presets, comma-separated")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--steady-from", type=int, default=400, help="frame from which the steady rate counts")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-compile", action="store_true", help="eager models (CPU smoke runs)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    h, w = (int(x) for x in a.size.lower().split("x"))
    device = torch.device(a.device)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        src, warm, dst = Path(tmp) / "in.mp4", Path(tmp) / "warm.mp4", Path(tmp) / "out.mp4"
        write_video(src, a.frames, h, w, 0)
        write_video(warm, 49, h, w, 1)
        models = {v: build(v, a.weights, device, not a.no_compile) for v in variants}
        for up in models.values():  # compile and warm every variant before the timed runs
            run_once(up, warm, dst, device, "ultrafast")
        for rep in range(a.repeats):
            for preset in a.presets.split(","):
                for v in variants:
                    fps, marks, frames = run_once(models[v], src, dst, device, preset)
                    row = {"variant": v, "preset": preset, "repeat": rep, "frames": frames, "fps": fps}
                    row["steady_fps"] = steady_rate(marks, a.steady_from)
                    row["first_output_s"] = next((t for n, t in marks if n >= 1), None)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    print(f"{'variant':>9} {'preset':>10} {'runs':>4} {'steady fps (each)':>30} {'median':>7}")
    for preset in a.presets.split(","):
        for v in variants:
            got = [r["steady_fps"] for r in rows if r["variant"] == v and r["preset"] == preset and r["steady_fps"]]
            each = " ".join(f"{x:.2f}" for x in got)
            med = f"{statistics.median(got):7.2f}" if got else "      -"
            print(f"{v:>9} {preset:>10} {len(got):>4} {each:>30} {med}")
    if a.json:
        meta = {"torch": torch.__version__, "device": str(device), "frames": a.frames, "size": [h, w]}
        if device.type == "cuda":
            meta["gpu"] = torch.cuda.get_device_name(device)
        Path(a.json).write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main()
