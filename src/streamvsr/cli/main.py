"""The ``streamvsr`` command line: ``upscale``, ``info``, ``eval``, ``bench``, ``batch``.

The CLI parses options, calls ``pipeline/`` and draws progress; user errors become one line on
stderr and a non-zero exit (a traceback only with ``--debug``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
import warnings
from pathlib import Path

import click

from streamvsr import __version__
from streamvsr.errors import StreamVSRError

DTYPES = {"auto": None, "float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


def _warn_line(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    click.echo(f"streamvsr: warning: {message}", err=True)


class _Main(click.Group):
    """Turns exceptions into one clear line unless ``--debug``."""

    def invoke(self, ctx: click.Context):  # noqa: ANN201
        debug = "--debug" in sys.argv
        if not debug:
            warnings.showwarning = _warn_line
        try:
            return super().invoke(ctx)
        except StreamVSRError as exc:
            if debug:
                raise
            click.echo(f"streamvsr: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("streamvsr: interrupted; no output was left behind", err=True)
            ctx.exit(130)
        except OSError as exc:
            if debug:
                raise
            click.echo(f"streamvsr: error: {exc}", err=True)
            ctx.exit(1)
        except click.UsageError as exc:  # a bad option of a command: one line, not click's three
            if debug:
                raise
            where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            click.echo(f"streamvsr: error: {exc.format_message()}{where}", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:
            if debug:
                raise
            click.echo(f"streamvsr: internal error: {type(exc).__name__}: {exc} (rerun with --debug)", err=True)
            ctx.exit(1)


@click.group(cls=_Main)
@click.version_option(__version__, prog_name="streamvsr")
@click.option("--debug", is_flag=True, help="Show full tracebacks.")
def cli(debug: bool) -> None:
    """Streaming diffusion-based video super-resolution."""


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise StreamVSRError(f"device {device!r} requested but CUDA is not available")
    if device.startswith("cuda:"):
        try:
            index = torch.device(device).index
        except RuntimeError:
            raise StreamVSRError(f"invalid device {device!r}") from None
        if index >= torch.cuda.device_count():
            raise StreamVSRError(f"device {device!r} requested but only {torch.cuda.device_count()} GPU(s) are visible")
        # The current device too: compiled kernels, library streams and CUDA contexts that use "the current
        # device" then stay on this rank's GPU instead of GPU 0.
        torch.cuda.set_device(index)
    return device


def _resolve_dtype(dtype: str):  # noqa: ANN202
    import torch

    return None if dtype == "auto" else getattr(torch, dtype)


def _encoder_options(f):  # noqa: ANN001, ANN202
    """The encoder options `upscale` and `batch` share."""
    for opt in reversed((
        click.option("--codec", default=None, help="Video encoder (libx264, libx265, libvpx-vp9, ffv1, ...)."),
        click.option("--crf", type=int, default=None, help="Constant rate factor for the encoder."),
        click.option("--bitrate", default=None, help="Target bitrate, e.g. 8M (instead of --crf)."),
        click.option("--pix-fmt", default=None, help="Output pixel format (default follows the input's bit depth)."),
        click.option("--encoder-opt", multiple=True, help="Extra encoder option KEY=VALUE (repeatable)."),
        click.option("--no-audio", is_flag=True, help="Drop audio and subtitle streams."),
        click.option(
            "--threads", type=click.IntRange(min=1), default=None,
            help="CPU threads of this process for torch and for the encoder, each. Default: all cores; under"
            " torchrun each of this host's workers takes half of its share of the cores for each.",
        ),
    )):  # fmt: skip
        f = opt(f)
    return f


def _encode_options(kw: dict, **extra: object):  # noqa: ANN202
    """EncodeOptions from the options of :func:`_encoder_options` (plus ``extra`` fields).

    Also applies ``--threads`` (or, under torchrun with several workers on this host, their share of the
    cores) to torch and, unless ``--encoder-opt threads=`` says otherwise, to the encoder.
    """
    import torch

    from streamvsr.pipeline.jobs import worker_threads
    from streamvsr.pipeline.run import EncodeOptions

    options = _parse_kv(kw["encoder_opt"])
    threads = worker_threads(kw["threads"])
    if threads is not None:
        torch.set_num_threads(threads)
        options.setdefault("threads", str(threads))
    return EncodeOptions(
        codec=kw["codec"], crf=kw["crf"], bitrate=kw["bitrate"], pix_fmt=kw["pix_fmt"],
        options=options, copy_audio=not kw["no_audio"], copy_subtitles=not kw["no_audio"],
        **extra,
    )  # fmt: skip


_COMPILE_HELP = (
    "torch.compile the model (FlashVSR: DiT blocks, TCDecoder and LQ projector; Stream-DiffVSR: UNet and ControlNet);"
    " faster on GPUs after a slower start."
)


_DTYPE_HELP = (
    "Compute dtype. auto: the model's choice (FlashVSR: bfloat16 on CUDA and on CPUs with bf16 instructions,"
    " float32 on other CPUs)."
)
_FP8_HELP = (
    "FlashVSR on Hopper GPUs: the DiT's big linears in FP8 (e4m3, per-token scales); less GPU memory, a little"
    " faster; with our trained model the output is about 61 dB PSNR from the bf16 output."
)
_PAD_HELP = (
    "FlashVSR: pad frames to whole tokens (16 px for official models; the DiT mirrors its tokens to whole attention"
    " windows: less work) or, as before, to whole windows (128 px). [default: tokens]"
)


def _family(model: str | None) -> str:
    from streamvsr.pipeline.registry import model_family

    return model_family(model)


def _compile_opt(model: str | None, on: bool) -> dict:
    """The model option of ``--compile`` (FlashVSR and Stream-DiffVSR)."""
    if not on:
        return {}
    if _family(model) not in ("flashvsr", "stream-diffvsr"):
        raise StreamVSRError("--compile applies to --model flashvsr and --model stream-diffvsr")
    return {"compile": True}


def _flashvsr_opt(model: str | None, flag: str, key: str, value: object) -> dict:
    """``{key: value}`` for a FlashVSR-only option given on the command line as ``flag``."""
    if _family(model) != "flashvsr":
        raise StreamVSRError(f"{flag} applies to --model flashvsr")
    return {key: value}


def _parse_kv(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for p in pairs:
        if "=" not in p:
            raise click.BadParameter(f"expected KEY=VALUE, got {p!r}", param_hint="--encoder-opt")
        k, v = p.split("=", 1)
        out[k] = v
    return out


class _Bar:
    """Progress drawing for the CLI (tqdm bar, JSON lines, or nothing)."""

    def __init__(self, mode: str, json_stream):  # noqa: ANN001
        self.mode = mode
        self.json_stream = json_stream
        self.bar = None

    def __call__(self, p) -> None:  # noqa: ANN001
        if self.mode == "json":
            obj = {
                "frames": p.frames,
                "total": p.total,
                "fps": round(p.fps, 3),
                "elapsed": round(p.elapsed, 3),
                "eta": None if p.eta is None else round(p.eta, 3),
                "done": p.done,
            }
            self.json_stream.write(json.dumps(obj) + "\n")
            self.json_stream.flush()
        elif self.mode == "bar":
            from tqdm import tqdm

            if self.bar is None:
                self.bar = tqdm(total=p.total, unit="frame", dynamic_ncols=True, file=sys.stderr)
            self.bar.n = p.frames
            self.bar.refresh()
            if p.done:
                self.bar.close()


@cli.command()
@click.argument("input_path", metavar="IN")
@click.option("-o", "--output", "output", required=True, help="Output file, PNG folder, or '-' for stdout.")
@click.option("--model", default=None, help="Model name (see `streamvsr info`); default: the embedded model.")
@click.option("--weights", type=click.Path(), default=None, help="Local weights folder (never downloaded).")
@click.option("--scale", type=int, default=None, help="Upscaling factor (default: the model's).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--dtype", type=click.Choice(list(DTYPES)), default="auto", show_default=True, help=_DTYPE_HELP)
@_encoder_options
@click.option("--format", "fmt", type=click.Choice(["auto", "png"]), default="auto", show_default=True)
@click.option("--start", type=float, default=None, help="Start time in seconds.")
@click.option("--duration", type=float, default=None, help="Duration in seconds.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--progress", type=click.Choice(["bar", "json", "none"]), default="bar", show_default=True)
@click.option("--batch", type=int, default=4, show_default=True, help="Frames pushed to the model at once.")
@click.option("--decoder", type=click.Choice(["tiny", "full"]), default=None, help="FlashVSR decoder.")
@click.option("--color-fix", type=click.Choice(["adain", "wavelet", "none"]), default=None)
@click.option("--attention", type=click.Choice(["auto", "flex", "dense"]), default="auto", show_default=True)
@click.option("--flashvsr-version", type=click.Choice(["1", "1.1"]), default=None)
@click.option("--seed", type=int, default=None, help="Seed; with a known frame count, the official noise draw.")
@click.option(
    "--detail",
    type=click.FloatRange(0.0, 2.0),
    default=None,
    help="FlashVSR: how much synthesised detail to keep, 0-2 (1 = as trained; lower: closer to the input, fewer"
    " invented textures, higher PSNR).",
)
@click.option("--compile", "compile_", is_flag=True, help=_COMPILE_HELP)
@click.option("--fp8", is_flag=True, help=_FP8_HELP)
@click.option("--pad-to", type=click.Choice(["tokens", "windows"]), default=None, help=_PAD_HELP)
@click.option(
    "--no-streams",
    is_flag=True,
    help="FlashVSR on CUDA: decode each chunk on the DiT's stream instead of beside the next chunk's DiT.",
)
@click.option(
    "--segments",
    default=None,
    help="Split the video into N segments (or auto: one per torchrun rank, cut at scene changes), upscale them"
    " (in parallel under torchrun) and join them without re-encoding.",
)
@click.option(
    "--overlap",
    type=int,
    default=None,
    help="Warm-up frames decoded before each segment, outputs discarded (default: max(16, 2 x look-ahead + 1)).",
)
def upscale(input_path: str, output: str, **kw) -> None:  # noqa: ANN003
    """Upscale the video IN into OUTPUT, keeping audio, subtitles, timestamps and colour tags."""
    from streamvsr.pipeline.registry import load_model
    from streamvsr.pipeline.run import upscale_file

    if input_path != "-" and not Path(input_path).exists():
        raise StreamVSRError(f"input not found: {input_path}")
    segments = _parse_segments(kw["segments"], kw)
    device = kw["device"]
    if segments is not None and device == "auto":
        device = _rank_device()
    device = _resolve_device(device)
    model_opts = {
        k: kw[k] for k in ("decoder", "color_fix", "attention", "flashvsr_version", "seed") if kw[k] is not None
    }
    model_opts.update(_compile_opt(kw["model"], kw["compile_"]))
    if kw["detail"] is not None:
        model_opts.update(_flashvsr_opt(kw["model"], "--detail", "detail", kw["detail"]))
    if kw["no_streams"]:
        model_opts.update(_flashvsr_opt(kw["model"], "--no-streams", "streams", False))
    if kw["pad_to"] is not None:
        model_opts.update(_flashvsr_opt(kw["model"], "--pad-to", "pad_to", kw["pad_to"]))
    if kw["fp8"]:
        model_opts.update(_flashvsr_opt(kw["model"], "--fp8", "fp8", True))
    if kw["seed"] is not None and input_path != "-" and segments is None:
        # the official noise draw needs the whole video's latent shape up front
        from streamvsr.media import open_reader

        with open_reader(input_path, start=kw["start"], duration=kw["duration"]) as r:
            if r.info.frame_count_exact and r.info.frame_count:
                model_opts["num_frames"] = r.info.frame_count
    prescan = _start_prescan(input_path, segments)  # scene scores for the split points, while the model loads
    model = load_model(
        kw["model"],
        weights=kw["weights"],
        device=device,
        dtype=_resolve_dtype(kw["dtype"]),
        scale=kw["scale"],
        **model_opts,
    )
    enc = _encode_options(kw, format=kw["fmt"], overwrite=kw["overwrite"])
    json_stream = sys.stderr if output == "-" else sys.stdout
    bar = _Bar(kw["progress"], json_stream)
    if segments is not None:
        _upscale_segmented(input_path, output, model, device, enc, segments, kw, bar, prescan)
        return
    res = upscale_file(
        input_path,
        output,
        model,
        device=device,
        encode=enc,
        start=kw["start"],
        duration=kw["duration"],
        batch=kw["batch"],
        progress=bar if kw["progress"] != "none" else None,
    )
    if kw["progress"] == "bar":
        click.echo(
            f"wrote {res.output}: {res.frames} frames {res.width}x{res.height} in {res.seconds:.1f}s"
            f" ({res.frames / max(res.seconds, 1e-9):.2f} fps)",
            err=True,
        )


def _parse_segments(value: str | None, kw: dict) -> int | str | None:
    if value is None:
        if kw["overlap"] is not None:
            raise StreamVSRError("--overlap needs --segments")
        return None
    if kw["start"] is not None or kw["duration"] is not None:
        raise StreamVSRError("--segments does not combine with --start/--duration")
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise StreamVSRError(f"--segments must be a number or auto, got {value!r}") from None


def _rank_device() -> str:
    """cuda:LOCAL_RANK under torchrun (cuda without it) when CUDA is there, else cpu."""
    import os

    import torch

    if not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count()}"


def _start_prescan(src: str, segments: int | str | None):  # noqa: ANN202
    """``--segments auto`` on rank 0 of several: a thread that scores the frames near the split points (see
    :func:`~streamvsr.pipeline.segments.prescan_scenes`), so planning costs nothing once the model is loaded.
    Returns a future, or None."""
    from streamvsr.pipeline.jobs import rank_and_world

    rank, world = rank_and_world()
    if segments != "auto" or rank != 0 or world < 2 or src == "-" or Path(src).is_dir():
        return None
    from concurrent.futures import ThreadPoolExecutor

    from streamvsr.pipeline.segments import prescan_scenes

    pool = ThreadPoolExecutor(1, thread_name_prefix="prescan")
    future = pool.submit(prescan_scenes, src, world)
    pool.shutdown(wait=False)
    return future


def _upscale_segmented(src: str, dst: str, model, device: str, enc, segments, kw: dict, bar, prescan=None) -> None:  # noqa: ANN001
    """``upscale --segments``: this rank's segments; rank 0 (or the single process) joins them."""
    from streamvsr.pipeline.jobs import rank_and_world
    from streamvsr.pipeline.segments import upscale_segmented

    rank, world = rank_and_world()
    scan = None
    # the pre-scan is only a head start: any failure of it leaves the planning to do the scan itself
    with contextlib.suppress(Exception):
        scan = prescan.result() if prescan is not None else None
    show = kw["progress"] != "none" and rank == 0

    def said(seg, res) -> None:  # noqa: ANN001
        if kw["progress"] == "bar" and world > 1:
            click.echo(f"[rank {rank}] segment {seg.index}: {res.frames} frames in {res.seconds:.1f}s", err=True)

    res = upscale_segmented(
        src, dst, model, segments=segments, overlap=kw["overlap"], device=device, encode=enc, batch=kw["batch"],
        progress=bar if show else None, rank=rank, world=world, on_segment=said, scan=scan,
    )  # fmt: skip
    if kw["progress"] == "bar" and world > 1:  # where a rank's time went: start, plan, segments, wait, join
        click.echo(f"[rank {rank}] " + ", ".join(f"{k} {v:.1f}s" for k, v in res.phases.items()), err=True)
    if kw["progress"] == "bar" and rank == 0:
        click.echo(
            f"wrote {res.output}: {res.frames} frames {res.width}x{res.height} in {res.seconds:.1f}s"
            f" ({res.frames / max(res.seconds, 1e-9):.2f} fps, {world} worker(s))",
            err=True,
        )


@cli.command()
@click.argument("in_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--model", default=None, help="Model name; default: the embedded model.")
@click.option("--weights", type=click.Path(), default=None)
@click.option("--scale", type=int, default=None)
@click.option("--device", default="auto", show_default=True, help="auto uses cuda:LOCAL_RANK under torchrun.")
@click.option("--dtype", type=click.Choice(list(DTYPES)), default="auto", show_default=True, help=_DTYPE_HELP)
@click.option("--suffix", default=None, help="Output container suffix (default: the input's).")
@_encoder_options
@click.option("--compile", "compile_", is_flag=True, help=_COMPILE_HELP)
@click.option("--fp8", is_flag=True, help=_FP8_HELP)
def batch(in_dir: Path, out_dir: Path, **kw) -> None:  # noqa: ANN003
    """Upscale every video of IN_DIR into OUT_DIR; finished outputs are skipped.

    Several GPUs: ``torchrun --nproc_per_node=N -m streamvsr.cli.main batch IN OUT`` (one stream per GPU,
    the model loaded once per GPU).
    """
    from streamvsr.pipeline.jobs import plan_jobs, rank_and_world, run_jobs
    from streamvsr.pipeline.registry import load_model
    from streamvsr.pipeline.run import upscale_file

    rank, world = rank_and_world()
    device = _resolve_device(_rank_device() if kw["device"] == "auto" else kw["device"])
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = plan_jobs(in_dir, out_dir, kw["suffix"], rank, world)
    if not jobs:
        click.echo(f"[rank {rank}] nothing to do", err=True)
        return
    model = load_model(
        kw["model"], weights=kw["weights"], device=device, dtype=_resolve_dtype(kw["dtype"]), scale=kw["scale"],
        **_compile_opt(kw["model"], kw["compile_"]),
        **(_flashvsr_opt(kw["model"], "--fp8", "fp8", True) if kw["fp8"] else {}),
    )  # fmt: skip
    enc = _encode_options(kw)

    def one(job) -> None:  # noqa: ANN001
        res = upscale_file(job.src, job.dst, model, device=device, encode=enc)
        msg = f"{job.src.name} -> {job.dst.name}: {res.frames} frames in {res.seconds:.1f}s"
        if "first_frame" in res.phases:  # the latency a process's first video pays for its start-up shows here
            msg += f" (first frame after {res.phases['first_frame']:.1f}s)"
        click.echo(f"[rank {rank}] {msg}", err=True)

    def fail(job, exc: Exception) -> None:  # noqa: ANN001
        click.echo(f"streamvsr: error: {job.src.name}: {exc}", err=True)

    done, failed = run_jobs(jobs, one, fail)
    click.echo(f"[rank {rank}] {done} done, {failed} failed", err=True)
    if failed:
        raise SystemExit(1)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info(as_json: bool) -> None:
    """Versions, devices, attention backends and available models."""
    import platform

    import av
    import torch

    from streamvsr.pipeline.registry import DEFAULT_MODEL, available_models

    devices = ["cpu"] + [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    backends = ["dense (masked SDPA)"]
    try:
        from torch.nn.attention.flex_attention import flex_attention  # noqa: F401

        backends.append("flex (FlexAttention)")
    except ImportError:
        pass
    try:
        import block_sparse_attn  # noqa: F401

        backends.append("bsa (Block-Sparse-Attention)")
    except ImportError:
        pass
    try:  # found, not imported (its CuTe DSL libraries take seconds to load); a broken flash_attn raises here
        if importlib.util.find_spec("flash_attn") and importlib.util.find_spec("flash_attn.cute"):
            backends.append("fa4 (FlashAttention 4's Hopper kernel, taken by flex on the block lists)")
    except Exception:  # noqa: BLE001 - a broken install is no backend, not a failed `info`
        pass
    data = {
        "streamvsr": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyav": av.__version__,
        "ffmpeg": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
        "devices": devices,
        "attention_backends": backends,
        "default_model": DEFAULT_MODEL,
        "models": {m.name: m.description for m in available_models()},
    }
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for k, v in data.items():
        if isinstance(v, dict):
            click.echo(f"{k}:")
            for kk, vv in v.items():
                click.echo(f"  {kk:18s} {vv}")
        elif isinstance(v, list):
            click.echo(f"{k}: {', '.join(v)}")
        else:
            click.echo(f"{k}: {v}")


def _register_optional() -> None:
    try:
        from streamvsr.cli.eval_cmds import bench_cmd, eval_cmd
    except ImportError:
        return
    cli.add_command(eval_cmd, "eval")
    cli.add_command(bench_cmd, "bench")


_register_optional()


def main() -> None:
    cli(prog_name="streamvsr")


if __name__ == "__main__":
    main()
