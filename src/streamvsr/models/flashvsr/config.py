"""FlashVSR configuration: frozen dataclasses and the size table.

Every size is a complete :class:`FlashVSRConfig`; ``to_dict`` / ``from_dict`` round-trip it through
``config.json``. The official size reproduces the released Wan2.1-1.3B based FlashVSR (spec §1.7, §2).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AttentionConfig",
    "DiTConfig",
    "FlashVSRConfig",
    "LQProjConfig",
    "SIZES",
    "TCDecoderConfig",
    "WanVAEDecoderConfig",
    "get_size",
]


@dataclass(frozen=True)
class DiTConfig:
    """Wan2.1-style DiT. Head size = dim / num_heads (official: 1536 / 12 = 128)."""

    dim: int
    num_layers: int
    num_heads: int
    ffn_dim: int
    in_channels: int = 16
    out_channels: int = 16
    patch: tuple[int, int, int] = (1, 2, 2)
    text_dim: int = 4096
    text_len: int = 512
    freq_dim: int = 256
    eps: float = 1e-6
    rope_theta: float = 10000.0
    learned_context: bool = False  # True: a learned (1, text_len, dim) context replaces the text embedding

    def __post_init__(self) -> None:
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head size {self.head_dim} must be even (RoPE pairs)")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads


@dataclass(frozen=True)
class AttentionConfig:
    """Locality-constrained block-sparse attention (spec §1.10) and KV cache (§1.9).

    backend: "auto" (flex on CUDA, dense elsewhere), "dense" (masked SDPA reference), "flex"
             (FlexAttention with a BlockMask), or "full" (plain attention: no sparsity, no top-k).
    sparse:  False keeps the block structure and the causal window mask but skips the local mask and
             top-k selection (every allowed key block is used).
    """

    window: tuple[int, int, int] = (2, 8, 8)
    sparse_ratio: float = 2.0
    local_range: int = 11
    kv_windows: int = 3
    backend: str = "auto"
    sparse: bool = True

    def __post_init__(self) -> None:
        if self.backend not in ("auto", "dense", "flex", "full"):
            raise ValueError(f"unknown attention backend {self.backend!r}")

    @property
    def block_tokens(self) -> int:
        return self.window[0] * self.window[1] * self.window[2]


@dataclass(frozen=True)
class LQProjConfig:
    """LR projector (spec §1.6). causal=True: v1.1 ``Causal_LQ4x_Proj``; False: v1 ``Buffer_LQ4x_Proj``."""

    in_channels: int = 3
    unshuffle: int = 16
    hidden1: int = 2048
    hidden2: int = 3072
    out_dim: int = 1536
    causal: bool = True


@dataclass(frozen=True)
class TCDecoderConfig:
    """Tiny conditional decoder (spec §1.11.2)."""

    channels: tuple[int, ...] = (512, 256, 128, 128)
    latent_channels: int = 16
    cond_channels: int = 768
    time_strides: tuple[int, ...] = (1, 2, 2)
    # ours, not in the paper: the output is the condition frame (bicubic LR) plus the stack's output, so a
    # small decoder only has to learn the detail (the last conv starts at zero: output = bicubic)
    lq_residual: bool = False
    # ours: how each stage doubles the resolution. "nearest" is the official TCDecoder's; it repeats every
    # latent cell, so detail in the latents comes out with a copy of its spectrum at the 8-pixel latent grid
    # (a regular hatching on flat areas, measured in docs/training.md). "bilinear" interpolates instead.
    upsample: str = "nearest"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TCDecoderConfig:
        """From a config.json section; missing fields (older files) take their defaults."""
        return _build(cls, d)


@dataclass(frozen=True)
class WanVAEDecoderConfig:
    """Wan2.1 causal VAE decoder (spec §1.11.1)."""

    dim: int = 96
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temporal_upsample: tuple[bool, ...] = (True, True, False)


@dataclass(frozen=True)
class FlashVSRConfig:
    """A whole FlashVSR model: DiT + attention policy + LQ projector + decoder(s)."""

    dit: DiTConfig
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    lq_proj: LQProjConfig = field(default_factory=LQProjConfig)
    decoder: TCDecoderConfig | None = field(default_factory=TCDecoderConfig)
    vae: WanVAEDecoderConfig | None = None
    version: str = "1.1"
    latent_scale: int = 8  # pixels per latent cell (spatial)
    latent_frames: int = 4  # video frames per latent frame (temporal)

    def __post_init__(self) -> None:
        if self.lq_proj.out_dim != self.dit.dim:
            raise ValueError(f"lq_proj.out_dim {self.lq_proj.out_dim} != dit.dim {self.dit.dim}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return _to_jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FlashVSRConfig:
        """Inverse of :meth:`to_dict`; missing optional fields take their defaults."""
        d = dict(d)
        dit = _build(DiTConfig, d.pop("dit"))
        att = _build(AttentionConfig, d.pop("attention", {}) or {})
        lq = _build(LQProjConfig, d.pop("lq_proj", {}) or {})
        dec_d = d.pop("decoder", None)
        vae_d = d.pop("vae", None)
        dec = _build(TCDecoderConfig, dec_d) if dec_d is not None else None
        vae = _build(WanVAEDecoderConfig, vae_d) if vae_d is not None else None
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown FlashVSRConfig fields: {sorted(unknown)}")
        return cls(dit=dit, attention=att, lq_proj=lq, decoder=dec, vae=vae, **d)


def _to_jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_to_jsonable(v) for v in x]
    return x


def _build(cls: type, d: dict[str, Any]) -> Any:
    """Build a dataclass from a dict, turning lists back into tuples."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


SIZES: dict[str, FlashVSRConfig] = {
    # The released FlashVSR (v1.1 projector semantics; use version="1" + causal=False for v1).
    "official-1.3b": FlashVSRConfig(
        dit=DiTConfig(dim=1536, num_layers=30, num_heads=12, ffn_dim=8960),
        attention=AttentionConfig(),
        lq_proj=LQProjConfig(),
        decoder=TCDecoderConfig(),
        vae=WanVAEDecoderConfig(),
        version="1.1",
    ),
    # Our default trainable model: learned constant context instead of a text encoder.
    "small": FlashVSRConfig(
        dit=DiTConfig(dim=384, num_layers=8, num_heads=6, ffn_dim=1024, text_len=16, learned_context=True),
        attention=AttentionConfig(),
        lq_proj=LQProjConfig(hidden1=256, hidden2=384, out_dim=384),
        decoder=TCDecoderConfig(channels=(64, 48, 32, 32)),
        vae=None,
        version="small",
    ),
    # Planned default for CPU and GPU alike: one token per 32x32 output pixels (patch 4 on the 8x latent),
    # one cached window. Random weights, 320x180 -> 1280x720 on 2 CPU threads, steady state: 1.69 FPS
    # (`python bench/flashvsr_cpu.py p32-d256-kv1 2`, 2026-11-25); "small": 0.11 FPS (2 threads of the H100 host).
    "fast": FlashVSRConfig(
        dit=DiTConfig(
            dim=256, num_layers=6, num_heads=4, ffn_dim=768, patch=(1, 4, 4), text_len=16, learned_context=True
        ),
        attention=AttentionConfig(kv_windows=1),
        lq_proj=LQProjConfig(unshuffle=32, hidden1=32, hidden2=64, out_dim=256),
        decoder=TCDecoderConfig(channels=(24, 16, 12, 12), lq_residual=True),
        vae=None,
        version="fast",
    ),
    # Unit tests only.
    "tiny": FlashVSRConfig(
        dit=DiTConfig(
            dim=64,
            num_layers=2,
            num_heads=2,
            ffn_dim=128,
            text_dim=32,
            text_len=8,
            freq_dim=32,
            learned_context=True,
        ),
        attention=AttentionConfig(),
        lq_proj=LQProjConfig(hidden1=32, hidden2=48, out_dim=64),
        decoder=TCDecoderConfig(channels=(16, 16, 8, 8)),
        vae=WanVAEDecoderConfig(dim=8, dim_mult=(1, 2, 2, 2), num_res_blocks=1),
        version="tiny",
    ),
}


def get_size(name: str) -> FlashVSRConfig:
    """Look up a size by name (raises ``KeyError`` listing the known names)."""
    try:
        return SIZES[name]
    except KeyError:
        raise KeyError(f"unknown FlashVSR size {name!r}; known: {sorted(SIZES)}") from None
