#!/usr/bin/env python3
"""Write a folder of tiny random FlashVSR weights in the *official* layout (for tests and demos).

Files: diffusion_pytorch_model_streaming_dmd.safetensors, LQ_proj_in.ckpt, TCDecoder.ckpt, Wan2.1_VAE.pth
(with a ``model.`` prefix and a few unused encoder keys, like the real file), posi_prompt.pth and a config.json
giving num_heads and version (the head count cannot be read from the shapes).

Usage: python scripts/make_tiny_official.py DIR [--version 1.1] [--seed 0] [--no-config] [--wrap-vae]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from streamvsr.models.flashvsr.config import DiTConfig, LQProjConfig, TCDecoderConfig, WanVAEDecoderConfig
from streamvsr.models.flashvsr.lq_proj import LQProjector
from streamvsr.models.flashvsr.tcdecoder import TCDecoder
from streamvsr.models.flashvsr.wan_vae import WanVAEDecoder
from streamvsr.pipeline.flashvsr_weights import OFFICIAL_FILES, official_dit_shapes

TINY_DIT = DiTConfig(dim=64, num_layers=2, num_heads=2, ffn_dim=128, text_dim=32, text_len=8, freq_dim=32)
TINY_LQ = LQProjConfig(hidden1=32, hidden2=48, out_dim=64)
TINY_TC = TCDecoderConfig(channels=(16, 16, 8, 8))
TINY_VAE = WanVAEDecoderConfig(dim=8, dim_mult=(1, 2, 2, 2), num_res_blocks=1)


def _random_like(shapes: dict[str, tuple[int, ...]], g: torch.Generator) -> dict[str, torch.Tensor]:
    out = {}
    for k, s in shapes.items():
        if k.endswith(("norm_q.weight", "norm_k.weight", "norm3.weight")):
            out[k] = 1 + 0.05 * torch.randn(s, generator=g)
        elif k.endswith(".bias"):
            out[k] = 0.01 * torch.randn(s, generator=g)
        else:
            fan_in = max(1, int(torch.Size(s[1:]).numel())) if len(s) > 1 else s[0]
            out[k] = torch.randn(s, generator=g) / fan_in**0.5
    return out


def _perturbed(module: torch.nn.Module, g: torch.Generator) -> dict[str, torch.Tensor]:
    """The module's own init plus a little noise (so RMS gammas / identity convs are not exactly trivial)."""
    return {k: v + 0.01 * torch.randn(v.shape, generator=g) for k, v in module.state_dict().items()}


def write_tiny_official(
    folder: str | Path, version: str = "1.1", seed: int = 0, config: bool = True, wrap_vae: bool = False
) -> Path:
    """Create ``folder`` with tiny official-layout weights; returns the folder."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    dit = _random_like(official_dit_shapes(TINY_DIT), g)
    save_file(dit, str(out / OFFICIAL_FILES["dit"]), metadata={"format": "pt"})
    torch.save(_perturbed(LQProjector(TINY_LQ), g), out / OFFICIAL_FILES["lq_proj"])
    torch.save(_perturbed(TCDecoder(TINY_TC), g), out / OFFICIAL_FILES["tcdecoder"])
    vae = {f"model.{k}": v for k, v in _perturbed(WanVAEDecoder(TINY_VAE), g).items()}
    vae["model.encoder.conv1.weight"] = torch.randn(8, 3, 3, 3, 3, generator=g)  # unused encoder side
    vae["model.conv1.weight"] = torch.randn(32, 32, 1, 1, 1, generator=g)
    torch.save({"model_state": vae} if wrap_vae else vae, out / OFFICIAL_FILES["vae"])
    prompt = torch.randn(1, TINY_DIT.text_len, TINY_DIT.text_dim, generator=g).to(torch.bfloat16)
    torch.save(prompt, out / OFFICIAL_FILES["prompt"])
    if config:
        (out / "config.json").write_text(json.dumps({"num_heads": TINY_DIT.num_heads, "version": version}) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--version", default="1.1", choices=["1", "1.1"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-config", action="store_true", help="omit config.json (heads then default to dim/128)")
    ap.add_argument("--wrap-vae", action="store_true", help="wrap the VAE state dict in 'model_state'")
    a = ap.parse_args()
    path = write_tiny_official(a.folder, a.version, a.seed, config=not a.no_config, wrap_vae=a.wrap_vae)
    print(f"wrote tiny official FlashVSR folder {path}")


if __name__ == "__main__":
    main()
