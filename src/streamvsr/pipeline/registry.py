"""Named models: one place where a CLI name becomes a streaming model.

Defining, loading and running are separate steps: each entry builds a model from a config and
(optionally) a weights folder; nothing here guesses an architecture from a file name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from streamvsr.errors import ModelError
from streamvsr.pipeline.frame_model import FrameModel
from streamvsr.pipeline.protocol import ModelSpec, StreamingModel

DEFAULT_MODEL = "bicubic"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    scales: tuple[int, ...]
    factory: Callable[..., StreamingModel]
    needs_weights: bool = False


def _bicubic(scale: int, device: torch.device, dtype: torch.dtype | None, **_: object) -> StreamingModel:
    def fn(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)

    return FrameModel(fn, ModelSpec("bicubic", scale), dtype=torch.float32)


def _lanczos(scale: int, device: torch.device, dtype: torch.dtype | None, **_: object) -> StreamingModel:
    from streamvsr.ops.resize import lanczos_resize

    def fn(x: torch.Tensor) -> torch.Tensor:
        return lanczos_resize(x, (x.shape[-2] * scale, x.shape[-1] * scale))

    return FrameModel(fn, ModelSpec("lanczos", scale), dtype=torch.float32)


_REGISTRY: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> None:
    _REGISTRY[entry.name] = entry


register(ModelEntry("bicubic", "bicubic interpolation (classical baseline)", (2, 3, 4, 8), _bicubic))
register(ModelEntry("lanczos", "Lanczos-3 interpolation (classical baseline)", (2, 3, 4, 8), _lanczos))


def available_models() -> list[ModelEntry]:
    return list(_REGISTRY.values())


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
