"""FlashVSR model components (config, DiT, attention; projector and decoders)."""

from streamvsr.models.flashvsr.config import (
    SIZES,
    AttentionConfig,
    DiTConfig,
    FlashVSRConfig,
    LQProjConfig,
    TCDecoderConfig,
    WanVAEDecoderConfig,
    get_size,
)

__all__ = [
    "SIZES",
    "AttentionConfig",
    "DiTConfig",
    "FlashVSRConfig",
    "LQProjConfig",
    "TCDecoderConfig",
    "WanVAEDecoderConfig",
    "get_size",
]
