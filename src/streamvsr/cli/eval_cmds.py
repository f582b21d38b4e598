"""``streamvsr eval`` and ``streamvsr bench`` (registered in :mod:`streamvsr.cli.main`)."""

from __future__ import annotations

from pathlib import Path

import click

from streamvsr.errors import InputError, StreamVSRError

DTYPE_CHOICES = ("auto", "float32", "float16", "bfloat16")


def _device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise StreamVSRError(f"device {device!r} requested but CUDA is not available")
    return device


def _dtype(dtype: str):  # noqa: ANN202
    import torch

    return None if dtype == "auto" else getattr(torch, dtype)


def _size(value: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WxH, e.g. 640x360, got {value!r}", param_hint="--size") from None
    if w < 1 or h < 1:
        raise click.BadParameter(f"width and height must be positive, got {value!r}", param_hint="--size")
    return w, h


def _model_args(models: tuple[str, ...], weights: tuple[str, ...]) -> tuple[list[str], list[str | None]]:
    """``--model NAME`` / ``--model NAME=WEIGHTS_DIR`` entries and the older positional ``--weights``.

    Returns the names and one weights folder (or None) per name; mixing both forms is an error.
    """
    names: list[str] = []
    folders: list[str | None] = []
    for m in models:
        name, eq, folder = m.partition("=")
        name, folder = name.strip(), folder.strip()
        if not name or (eq and not folder):
            raise InputError(f"--model expects NAME or NAME=WEIGHTS_DIR, got {m!r}")
        names.append(name)
        folders.append(folder if eq else None)
    if weights:
        if any(f is not None for f in folders):
            raise InputError("use either --model NAME=WEIGHTS_DIR or --weights (paired by position), not both")
        if len(weights) > len(models):
            raise InputError(f"{len(weights)} --weights for {len(models)} --model (they pair by position)")
        folders = [w or None for w in weights] + folders[len(weights) :]  # --weights "" skips a model
    return names, folders


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.4f}" if abs(v) < 10 else f"{v:.2f}"


def _flashvsr_options(names: list[str], kw: dict, keys: tuple[str, ...]) -> dict[str, dict]:
    """{model: {key: value}} for the FlashVSR-only options among ``keys`` that were given (``kw[key]`` not None),
    for each FlashVSR-family model of ``names``; an option given without such a model is an error."""
    from streamvsr.pipeline.registry import model_family

    flash = [n for n in names if model_family(n) == "flashvsr"]
    out: dict[str, dict] = {}
    for key in keys:
        if kw[key] is None:
            continue
        if not flash:
            raise InputError(f"--{key.replace('_', '-')} applies to --model flashvsr")
        for n in flash:
            out.setdefault(n, {})[key] = kw[key]
    return out


@click.command("eval")
@click.option("--model", "models", multiple=True, required=True, metavar="NAME[=WEIGHTS_DIR]",
              help="Model, optionally with its weights folder (repeat to compare several, also the same model "
              "with different weights).")  # fmt: skip
@click.option("--weights", multiple=True, type=click.Path(),
              help="Older form: weights of the N-th --model (repeatable; not with NAME=WEIGHTS_DIR).")  # fmt: skip
@click.option("--data", "data_dir", required=True, type=click.Path(), help="Sequences folder, videos or images.")
@click.option("--degradation", type=click.Choice(["bi", "bd", "real", "none"]), default="bi", show_default=True)
@click.option("--scale", type=int, default=4, show_default=True)
@click.option("--json", "json_out", type=click.Path(), default=None, help="Write the results as JSON.")
@click.option("--report", "report_dir", type=click.Path(), default=None, help="Write a report folder.")
@click.option("--max-frames", type=int, default=None, help="At most N frames per sequence.")
@click.option("--metrics", default=None, help="Comma-separated subset, e.g. psnr_y,ssim_y (fps always).")
@click.option("--layout", type=click.Choice(["auto", "sequences", "videos", "images", "frames"]), default="auto",
              show_default=True, help="How --data is organised (frames: the folder is one sequence).")  # fmt: skip
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--dtype", type=click.Choice(DTYPE_CHOICES), default="auto", show_default=True)
@click.option("--detail", type=click.FloatRange(0.0, 2.0), default=None,
              help="FlashVSR: how much synthesised detail to keep (see `streamvsr upscale --help`).")  # fmt: skip
@click.option("--pad-to", type=click.Choice(["tokens", "windows"]), default=None,
              help="FlashVSR: pad to whole tokens or whole windows (see `streamvsr upscale --help`).")  # fmt: skip
def eval_cmd(models: tuple[str, ...], weights: tuple[str, ...], data_dir: str, **kw) -> None:  # noqa: ANN003
    """Measure models on a dataset (PSNR/SSIM, ST-LPIPS, NIQE, temporal metrics, fps)."""
    from streamvsr.eval.report import write_json
    from streamvsr.eval.runner import METRICS, evaluate_many

    names, folders = _model_args(models, weights)
    model_options = _flashvsr_options(names, kw, ("detail", "pad_to"))
    metrics = None if kw["metrics"] is None else [m.strip() for m in kw["metrics"].split(",") if m.strip()]

    def progress(p: dict) -> None:
        click.echo(f"[{p['index'] + 1}/{p['total']}] {p['model']}: {p['sequence']} ({p['frames']} frames)", err=True)

    results = evaluate_many(
        names,
        data_dir,
        kw["degradation"],
        kw["scale"],
        kw["max_frames"],
        kw["report_dir"],
        progress,
        weights=folders,
        device=_device(kw["device"]),
        dtype=_dtype(kw["dtype"]),
        metrics=metrics,
        layout=kw["layout"],
        model_options=model_options,
    )
    keys = [k for k in METRICS if any(r["mean"][k] is not None for r in results)]
    width = max(len("model"), *(len(r["model"]) for r in results))
    click.echo("  ".join(["model".ljust(width), *(k.rjust(11) for k in keys)]))
    for r in results:
        click.echo("  ".join([r["model"].ljust(width), *(_fmt(r["mean"][k]).rjust(11) for k in keys)]))
    if kw["json_out"]:
        out = Path(kw["json_out"])
        write_json(results[0] if len(results) == 1 else results, out)
        click.echo(f"wrote {out}", err=True)
    if kw["report_dir"]:
        click.echo(f"wrote report to {kw['report_dir']}", err=True)


@click.command("bench")
@click.option("--model", required=True, help="Model name.")
@click.option("--weights", type=click.Path(), default=None, help="Local weights folder.")
@click.option("--size", "size", required=True, help="Input frame size WxH, e.g. 640x360.")
@click.option("--frames", type=int, default=32, show_default=True, help="Frames to stream.")
@click.option("--warmup", type=int, default=None,
              help="Unmeasured warm-up frames, streamed and flushed first (default: the look-ahead + 16).")  # fmt: skip
@click.option("--scale", type=int, default=None, help="Upscaling factor (default: the model's).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--dtype", type=click.Choice(DTYPE_CHOICES), default="auto", show_default=True)
@click.option("--json", "json_out", type=click.Path(), default=None, help="Write the result as JSON.")
@click.option("--pad-to", type=click.Choice(["tokens", "windows"]), default=None,
              help="FlashVSR: pad to whole tokens or whole windows (see `streamvsr upscale --help`).")  # fmt: skip
def bench_cmd(model: str, weights: str | None, size: str, frames: int, **kw) -> None:  # noqa: ANN003
    """Frames/s, per-frame latency and peak memory of one model on synthetic frames."""
    from streamvsr.eval.bench import benchmark, format_table
    from streamvsr.eval.report import write_json
    from streamvsr.pipeline.registry import load_model

    if frames < 1:
        raise click.BadParameter("must be >= 1", param_hint="--frames")
    w, h = _size(size)
    device = _device(kw["device"])
    dtype = _dtype(kw["dtype"])
    opts = _flashvsr_options([model], kw, ("pad_to",)).get(model, {})
    m = load_model(model, weights=weights, device=device, dtype=dtype, scale=kw["scale"], **opts)
    warmup = None if kw["warmup"] is None else max(kw["warmup"], 0)
    res = benchmark(m, w, h, frames, device=device, warmup=warmup, name=model, dtype=dtype)
    click.echo(format_table([res]))
    if kw["json_out"]:
        write_json(res.to_dict(), Path(kw["json_out"]))
        click.echo(f"wrote {kw['json_out']}", err=True)
