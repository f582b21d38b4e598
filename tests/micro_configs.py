"""Micro configs shared by the recipe tests (imported by name: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import dataclasses

from streamvsr.models.autoencoder import AutoencoderConfig
from streamvsr.models.flashvsr.config import SIZES, TCDecoderConfig

TINY = SIZES["tiny"]
MICRO = dataclasses.replace(
    TINY,
    dit=dataclasses.replace(TINY.dit, dim=32, num_heads=2, ffn_dim=64, freq_dim=16, text_len=4),
    lq_proj=dataclasses.replace(TINY.lq_proj, hidden1=8, hidden2=16, out_dim=32),
    decoder=TCDecoderConfig(channels=(8, 8, 8, 8)),
    vae=None,
    version="micro",
)
MICRO_AE = AutoencoderConfig(enc_channels=(4, 4, 8), enc_blocks=(1, 1, 1), dec_channels=(8, 4, 4), dec_blocks=(1, 1, 1))
