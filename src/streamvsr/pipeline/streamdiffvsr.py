"""Stream-DiffVSR (arXiv 2512.23709) as a truly streaming x4 upscaler.

Per frame i (causal; the output of frame i is returned by the ``push`` that received it)::

    x_lr  = 2 * frame - 1                                   # (1, 3, h, w), LR in [-1, 1]
    z     = N(0, I) from the seeded generator, in frame order  # (1, 4, h, w), latent = LR resolution
    if i > 0:
        F   = backward flow cur -> prev (RAFT on bicubic x4 LR by default)   # (1, 2, 4h, 4w), freed at once
        W   = warp(Y_{i-1}, F)                               # previous *unclamped* HR output, aligned
    for t in (999, 749, 499, 249):                          # DDIM, v-prediction, eta = 0
        x   = concat([z, x_lr])                              # (1, 7, h, w)
        res = ControlNet(x, t, text, cond=W) if i > 0        # 12 down + 1 mid residuals
        v   = UNet(x, t, text, + res)
        z   = DDIM step (final alpha_prev = alpha_bar[0])
    Y_i   = TAE decoder(z, TPM features = TAE encoder blocks of raw W, reversed) # (1, 3, 4h, 4w)

State between frames is only ``Y_{i-1}`` (HR) and ``x_lr`` of frame i-1: memory does not grow with
the video. Weights come from the official folder layout (``unet/``, ``controlnet/``, ``vae/``,
``scheduler/``, and ``text_encoder/`` + ``tokenizer/`` or a saved empty-prompt embedding); diffusers is
imported lazily (optional extra ``sdvsr``).
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from streamvsr.errors import InputError, ModelError
from streamvsr.models.raft import RAFT, RAFT_LARGE, RAFT_TINY, config_from_state_dict
from streamvsr.models.sdvsr_decoder import TAEConfig, TemporalAutoencoderTiny
from streamvsr.ops.flow import FlowEstimator, warp
from streamvsr.pipeline.protocol import ModelSpec

SCALE = 4
PROMPT_EMBEDS_FILE = "empty_prompt_embeds.safetensors"
TORCHVISION_RAFT_FILE = "raft_large_C_T_SKHT_V2-ff5fadd5.pth"

# [derived] in the spec (SD x4 upscaler / StableVSR UNet without the noise-level class embedding).
OFFICIAL_UNET_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [256, 512, 512, 1024],
    "center_input_sample": False,
    "cross_attention_dim": 1024,
    "down_block_types": [
        "DownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
    ],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 7,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-5,
    "norm_num_groups": 32,
    "only_cross_attention": [True, True, True, False],
    "out_channels": 4,
    "sample_size": 128,
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "use_linear_projection": True,
}
OFFICIAL_CONTROLNET_EMBED = (64, 128, 256)
# [hub] scheduler/scheduler_config.json
OFFICIAL_SCHEDULER_CONFIG: dict[str, Any] = {
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "timestep_spacing": "trailing",
    "clip_sample": False,
    "thresholding": False,
    "rescale_betas_zero_snr": False,
}
OFFICIAL_TEXT_DIM = 1024

# Tiny configs with the same topology, for tests and the CPU smoke benchmark.
TINY_UNET_CONFIG: dict[str, Any] = {
    **OFFICIAL_UNET_CONFIG,
    "attention_head_dim": 2,
    "block_out_channels": [8, 16, 16, 32],
    "cross_attention_dim": 16,
    "norm_num_groups": 4,
    "sample_size": 32,
}
TINY_CONTROLNET_EMBED = (4, 8, 8)
TINY_TAE_CONFIG = TAEConfig(encoder_block_out_channels=(8, 8, 8), decoder_block_out_channels=(8, 8, 8))
TINY_TEXT_DIM = 16


def _diffusers():  # noqa: ANN202
    try:
        import diffusers
    except ImportError as exc:
        raise ModelError("stream-diffvsr needs diffusers: pip install 'streamvsr[sdvsr]'") from exc
    return diffusers


# ----------------------------------------------------------------------------------------------
# DDIM (pure functions)


def ddim_step(
    z: torch.Tensor, out: torch.Tensor, alpha_t: float, alpha_prev: float, prediction: str = "v_prediction"
) -> torch.Tensor:
    """One deterministic DDIM step (eta = 0) from model output ``out`` at cumulative alpha ``alpha_t``."""
    st, s1t = alpha_t**0.5, (1 - alpha_t) ** 0.5
    if prediction == "v_prediction":
        x0 = st * z - s1t * out
        eps = st * out + s1t * z
    elif prediction == "epsilon":
        x0 = (z - s1t * out) / st
        eps = out
    else:
        raise ValueError(f"unsupported prediction type {prediction!r}")
    return alpha_prev**0.5 * x0 + (1 - alpha_prev) ** 0.5 * eps


def ddim_schedule(
    scheduler: Any, num_steps: int = 4, timesteps: list[int] | None = None
) -> list[tuple[int, float, float]]:
    """``[(t, alpha_bar_t, alpha_bar_prev)]`` exactly as diffusers' DDIMScheduler steps through them.

    With ``timesteps=None`` the scheduler's own spacing is used (official: trailing -> 999/749/499/249,
    ``prev = t - 1000 // steps``); custom ``timesteps`` step to the next one in the list. The last step
    goes to ``final_alpha_cumprod`` (alpha_bar[0] = 0.9999 when ``set_alpha_to_one`` is false).
    """
    ac = scheduler.alphas_cumprod
    final = float(scheduler.final_alpha_cumprod)
    n_train = scheduler.config.num_train_timesteps
    if timesteps is None:
        scheduler.set_timesteps(num_steps)
        ts = [int(t) for t in scheduler.timesteps]
        prevs = [t - n_train // num_steps for t in ts]
    else:
        ts = [int(t) for t in timesteps]
        if any(b >= a for a, b in zip(ts, ts[1:])) or not all(0 <= t < n_train for t in ts):
            raise ValueError(f"timesteps must decrease within [0, {n_train}), got {ts}")
        prevs = ts[1:] + [-1]
    return [(t, float(ac[t]), float(ac[p]) if p >= 0 else final) for t, p in zip(ts, prevs)]


# ----------------------------------------------------------------------------------------------
# Components and loading


@dataclass
class SDVSRComponents:
    """Everything the pipeline runs. ``prompt_embeds`` is the constant empty-prompt CLIP embedding."""

    unet: nn.Module
    controlnet: nn.Module
    vae: TemporalAutoencoderTiny
    scheduler: Any
    prompt_embeds: torch.Tensor  # (1, 77, D)
    raft: RAFT | None = None


def _first_line(exc: BaseException) -> str:
    s = str(exc).strip().splitlines()
    return s[0] if s else type(exc).__name__


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {_first_line(exc)}") from exc


def _load_state_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error
        raise ModelError(f"cannot read weights {path}: {_first_line(exc)}") from exc
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ModelError(f"{path} does not hold a state dict")
    return sd


def _weights_file(folder: Path) -> Path:
    for name in (
        "diffusion_pytorch_model.safetensors",
        "diffusion_pytorch_model.fp16.safetensors",
        "diffusion_pytorch_model.bin",
        "diffusion_pytorch_model.fp16.bin",
    ):
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    if len(found) == 1:
        return found[0]
    raise ModelError(f"no weights file (diffusion_pytorch_model.safetensors/.bin) in {folder}")


def load_state_strict(model: nn.Module, sd: dict[str, torch.Tensor], what: str) -> None:
    """Load ``sd`` into ``model``: missing keys or wrong shapes raise ModelError; extra keys warn."""
    own = model.state_dict()
    sd = dict(sd)
    for k, v in own.items():  # scalars saved as (1,) (or the reverse) load either way
        if k in sd and sd[k].numel() == 1 and v.numel() == 1 and sd[k].shape != v.shape:
            sd[k] = sd[k].reshape(v.shape)
    missing = [k for k in own if k not in sd]
    if missing:
        more = f" (+{len(missing) - 3} more)" if len(missing) > 3 else ""
        raise ModelError(f"{what}: checkpoint lacks {len(missing)} keys, e.g. {', '.join(missing[:3])}{more}")
    bad = [f"{k} {tuple(sd[k].shape)} != {tuple(v.shape)}" for k, v in own.items() if sd[k].shape != v.shape]
    if bad:
        raise ModelError(f"{what}: shape mismatch: {'; '.join(bad[:3])}")
    extra = [k for k in sd if k not in own]
    if extra:
        warnings.warn(f"{what}: ignoring {len(extra)} unexpected keys, e.g. {extra[0]}", stacklevel=3)
    model.load_state_dict({k: sd[k] for k in own}, strict=True)


def load_vae(folder: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
    """The temporal tiny autoencoder from ``vae/`` (``config.json`` + weights with TPM keys)."""
    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise ModelError(f"temporal decoder config not found: {cfg_path}")
    raw = _read_json(cfg_path)
    cls = raw.get("_class_name", "TemporalAutoencoderTiny")
    if cls not in ("TemporalAutoencoderTiny", "AutoencoderTiny"):
        raise ModelError(f"{folder}: expected the temporal tiny autoencoder, found {cls!r}")
    cfg = TAEConfig.from_dict(raw)
    if (
        len(set(cfg.decoder_block_out_channels)) != 1
        or cfg.encoder_block_out_channels != cfg.decoder_block_out_channels
    ):
        raise ModelError(f"{folder}: TPM needs equal encoder/decoder block widths, got {raw}")
    vae = TemporalAutoencoderTiny(cfg)
    sd = _load_state_file(_weights_file(folder))
    if not any(".temporal_processor." in k for k in sd):
        raise ModelError(f"{folder}: these are plain TAESD weights; Stream-DiffVSR needs the TPM (temporal_processor)")
    load_state_strict(vae, sd, "temporal decoder")
    return vae.to(device=device, dtype=dtype).eval().requires_grad_(False)


def load_prompt_embeds(root: str | Path) -> torch.Tensor:
    """The empty-prompt embedding ``(1, 77, D)``: the saved file if present, else the CLIP text encoder."""
    root = Path(root)
    path = root / PROMPT_EMBEDS_FILE
    if path.is_file():
        sd = _load_state_file(path)
        if "prompt_embeds" not in sd:
            raise ModelError(f"{path} has no 'prompt_embeds' tensor")
        emb = sd["prompt_embeds"]
        emb = emb[None] if emb.ndim == 2 else emb
        if emb.ndim != 3 or emb.shape[0] != 1:
            raise ModelError(f"{path}: expected (1, 77, D) prompt_embeds, got {tuple(emb.shape)}")
        return emb.float()
    if (root / "text_encoder").is_dir() and (root / "tokenizer").is_dir():
        return encode_empty_prompt(root)
    raise ModelError(
        f"{root}: no text_encoder/ + tokenizer/ and no {PROMPT_EMBEDS_FILE}; one is needed for the empty prompt"
    )


@torch.inference_mode()
def encode_empty_prompt(root: str | Path) -> torch.Tensor:
    """Run the CLIP text encoder once on ``""`` (CPU, fp32) -> ``(1, 77, D)``. Needs ``transformers``."""
    try:
        from transformers import CLIPTextModel, CLIPTokenizer
    except ImportError as exc:
        raise ModelError(
            f"encoding the empty prompt needs transformers (or a saved {PROMPT_EMBEDS_FILE}: see docs/streamdiffvsr.md)"
        ) from exc
    root = Path(root)
    try:
        tok = CLIPTokenizer.from_pretrained(str(root), subfolder="tokenizer", local_files_only=True)
        enc = CLIPTextModel.from_pretrained(str(root), subfolder="text_encoder", local_files_only=True).eval()
    except Exception as exc:  # noqa: BLE001 - a broken folder is a user error
        raise ModelError(f"cannot load the text encoder from {root}: {_first_line(exc)}") from exc
    length = min(tok.model_max_length, enc.config.max_position_embeddings)  # 77 for CLIP
    ids = tok([""], padding="max_length", max_length=length, truncation=True, return_tensors="pt")
    mask = ids.attention_mask if getattr(enc.config, "use_attention_mask", False) else None
    emb = enc(ids.input_ids, attention_mask=mask)[0].float()
    del enc
    return emb


def save_prompt_embeds(root: str | Path, out: str | Path | None = None) -> Path:
    """Encode the empty prompt once and save it as ``root/empty_prompt_embeds.safetensors`` (or ``out``)."""
    from safetensors.torch import save_file

    emb = encode_empty_prompt(root)
    path = Path(out) if out is not None else Path(root) / PROMPT_EMBEDS_FILE
    save_file({"prompt_embeds": emb.contiguous()}, str(path))
    return path


def _weights_in(folder: Path) -> Path | None:
    for pat in ("*.safetensors", "*.pth", "*.pt", "*.bin"):
        found = sorted(folder.glob(pat))
        if found:
            return found[0]
    return None


def find_raft_weights(root: str | Path | None = None) -> Path | None:
    """RAFT-large weights: ``root/raft/*``, ``root/raft_large*.pth``, or torchvision's download cache."""
    cands: list[Path | None] = []
    if root is not None:
        root = Path(root)
        if (root / "raft").is_dir():
            cands.append(_weights_in(root / "raft"))
        cands += sorted(root.glob("raft_large*.pth")) + sorted(root.glob("raft_large*.safetensors"))
    torch_home = Path(os.environ.get("TORCH_HOME", Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "torch"))
    cands.append(torch_home.expanduser() / "hub" / "checkpoints" / TORCHVISION_RAFT_FILE)
    return next((p for p in cands if p is not None and p.is_file()), None)


def load_raft(path: str | Path, device: torch.device | str = "cpu") -> RAFT:
    """RAFT from a torchvision-format checkpoint (``.pth``) or a safetensors file with the same keys.

    The architecture is read off the tensor shapes (torchvision's ``raft_large`` for the official weights).
    """
    sd = _load_state_file(Path(path))
    try:
        cfg = config_from_state_dict(sd, RAFT_LARGE.corr_levels) if sd else RAFT_LARGE
    except (KeyError, ValueError) as exc:
        try:  # tiny test configs use a 2-level pyramid
            cfg = config_from_state_dict(sd, 2)
        except (KeyError, ValueError):
            raise ModelError(f"{path} is not a RAFT (torchvision raft_large) checkpoint: {_first_line(exc)}") from exc
    raft = RAFT(cfg)
    load_state_strict(raft, sd, f"RAFT ({path})")
    return raft.to(device).eval().requires_grad_(False)


def _check_configs(unet: nn.Module, controlnet: nn.Module, emb: torch.Tensor) -> None:
    uc, cc = unet.config, controlnet.config
    if uc.in_channels != 7 or uc.out_channels != 4:
        raise ModelError(f"unet: expected 7 input / 4 output channels, got {uc.in_channels} / {uc.out_channels}")
    if uc.get("num_class_embeds") or uc.get("class_embed_type"):
        raise ModelError("unet has a noise-level class embedding (SD x4 upscaler?); Stream-DiffVSR's has none")
    if cc.in_channels != 7 or cc.conditioning_channels != 3:
        raise ModelError("controlnet: expected 7 input channels and a 3-channel (RGB) condition")
    if list(cc.block_out_channels) != list(uc.block_out_channels):
        raise ModelError("controlnet and unet block widths differ: not a matching ARTG ControlNet")
    if len(cc.conditioning_embedding_out_channels) != 3:
        raise ModelError("controlnet condition embedding must reduce the HR condition x4 (3 stages)")
    dims = {uc.cross_attention_dim, cc.cross_attention_dim, emb.shape[-1]}
    if len(dims) != 1:
        raise ModelError(f"text embedding width mismatch (unet/controlnet/prompt): {sorted(dims)}")


def load_components(
    weights: str | Path,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    raft_weights: str | Path | None = None,
) -> SDVSRComponents:
    """Load the official folder layout with diffusers (``local_files_only``; nothing is downloaded)."""
    d = _diffusers()
    root = Path(weights)
    if not root.is_dir():
        raise ModelError(f"weights folder not found: {root}")
    for sub in ("unet", "controlnet", "vae", "scheduler"):
        if not (root / sub / ("scheduler_config.json" if sub == "scheduler" else "config.json")).is_file():
            raise ModelError(f"{root} is not a Stream-DiffVSR folder: {sub}/ (with its config) is missing")
    emb = load_prompt_embeds(root)

    def _load(cls: Any, sub: str) -> Any:
        try:
            return cls.from_pretrained(
                str(root),
                subfolder=sub,
                local_files_only=True,
                torch_dtype=dtype,
                low_cpu_mem_usage=importlib.util.find_spec("accelerate") is not None,
            )
        except Exception as exc:  # noqa: BLE001 - diffusers raises several types for a bad folder
            raise ModelError(f"cannot load {sub}/ from {root}: {_first_line(exc)}") from exc

    unet = _load(d.UNet2DConditionModel, "unet")
    controlnet = _load(d.ControlNetModel, "controlnet")
    _check_configs(unet, controlnet, emb)
    try:
        scheduler = d.DDIMScheduler.from_pretrained(str(root), subfolder="scheduler", local_files_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"cannot load scheduler/ from {root}: {_first_line(exc)}") from exc
    vae = load_vae(root / "vae", device, dtype)
    if raft_weights is not None:
        raft_path = Path(raft_weights)
        if raft_path.is_dir():
            raft_path = _weights_in(raft_path)
        if raft_path is None or not raft_path.is_file():
            raise ModelError(f"RAFT weights not found: {raft_weights}")
    else:
        raft_path = find_raft_weights(root)
    raft = load_raft(raft_path, device) if raft_path is not None else None
    for m in (unet, controlnet):
        m.to(device).eval().requires_grad_(False)
    return SDVSRComponents(unet, controlnet, vae, scheduler, emb, raft)


def build_components(
    size: str = "official",
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    with_raft: bool = True,
) -> SDVSRComponents:
    """Random-weight components of the ``"official"`` or ``"tiny"`` configs (benchmarks, tests; no I/O)."""
    d = _diffusers()
    if size not in ("official", "tiny"):
        raise ValueError(f"size must be 'official' or 'tiny', got {size!r}")
    official = size == "official"
    torch.manual_seed(seed)
    device = torch.device(device)
    with device:
        unet = d.UNet2DConditionModel(**(OFFICIAL_UNET_CONFIG if official else TINY_UNET_CONFIG))
        controlnet = d.ControlNetModel.from_unet(
            unet,
            conditioning_embedding_out_channels=OFFICIAL_CONTROLNET_EMBED if official else TINY_CONTROLNET_EMBED,
            load_weights_from_unet=True,
        )
        vae = TemporalAutoencoderTiny(TAEConfig() if official else TINY_TAE_CONFIG)
        raft = RAFT(RAFT_LARGE if official else RAFT_TINY) if with_raft else None
        emb = torch.randn(1, 77, OFFICIAL_TEXT_DIM if official else TINY_TEXT_DIM)
    # make the ControlNet's zero convs non-zero so that its path is exercised
    g = torch.Generator().manual_seed(seed + 1)
    for name, p in controlnet.named_parameters():
        if name.startswith(("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding.conv_out")):
            p.data.copy_(torch.randn(p.shape, generator=g) * 0.02)
    scheduler = d.DDIMScheduler(**OFFICIAL_SCHEDULER_CONFIG)
    for m in (unet, controlnet, vae):
        nn.Module.to(m, dtype=dtype).eval().requires_grad_(False)
    if raft is not None:
        raft.eval().requires_grad_(False)
    return SDVSRComponents(unet, controlnet, vae, scheduler, emb, raft)


def save_components(c: SDVSRComponents, folder: str | Path, text_encoder: bool = False) -> Path:
    """Write ``c`` in the official folder layout (diffusers ``save_pretrained``; TAE as config + safetensors)."""
    from safetensors.torch import save_file

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    c.unet.save_pretrained(str(root / "unet"))
    c.controlnet.save_pretrained(str(root / "controlnet"))
    c.scheduler.save_pretrained(str(root / "scheduler"))
    (root / "vae").mkdir(exist_ok=True)
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in c.vae.cfg.__dict__.items()}
    (root / "vae" / "config.json").write_text(json.dumps({"_class_name": "TemporalAutoencoderTiny", **cfg}, indent=2))
    sd = {k: v.detach().contiguous().cpu() for k, v in c.vae.state_dict().items()}
    save_file(sd, str(root / "vae" / "diffusion_pytorch_model.safetensors"))
    if not text_encoder:
        save_file({"prompt_embeds": c.prompt_embeds.detach().contiguous().cpu()}, str(root / PROMPT_EMBEDS_FILE))
    index = {
        "_class_name": "StreamDiffVSRPipeline",
        "_diffusers_version": "0.21.0.dev0",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "controlnet": ["diffusers", "ControlNetModel"],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "vae": [None, "TemporalAutoencoderTiny"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
    }
    (root / "model_index.json").write_text(json.dumps(index, indent=2))
    if c.raft is not None:
        (root / "raft").mkdir(exist_ok=True)
        save_file(
            {k: v.contiguous().cpu() for k, v in c.raft.state_dict().items()},
            str(root / "raft" / "raft.safetensors"),
        )
    return root


# ----------------------------------------------------------------------------------------------
# The streaming upscaler


def default_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def _place(m: nn.Module, device: torch.device, dtype: torch.dtype, fmt: torch.memory_format) -> nn.Module:
    """Move ``m`` to ``device``/``dtype``/``fmt`` in place."""
    nn.Module.to(m, dtype=dtype)  # the base method: diffusers' override warns on every dtype cast
    return nn.Module.to(m, device=device, memory_format=fmt)


def group_norm_b1(
    x: torch.Tensor, groups: int, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float
) -> torch.Tensor:
    """GroupNorm of a batch-1 ``(1, C, H, W)`` tensor (any memory layout) as per-channel reductions + BN.

    PyTorch's GroupNorm kernel gives each (sample, group) row one thread block: 32 blocks for batch 1,
    a fraction of an H100. Here the statistics are two fp32-accumulated reductions and the
    normalisation is one inference-mode batch-norm kernel with per-channel (= per-group) statistics.
    """
    c = x.shape[1]
    k = c // groups
    n = x[0, 0].numel() * k
    s1 = x.sum(dim=(2, 3), dtype=torch.float32).view(groups, k).sum(1)  # (G,)
    s2 = torch.linalg.vector_norm(x, dim=(2, 3), dtype=torch.float32).square().view(groups, k).sum(1)
    mean = s1 / n
    var = (s2 / n - mean.square()).clamp_min(0)
    w = weight.float() if weight is not None else None
    b = bias.float() if bias is not None else None
    return F.batch_norm(
        x, mean.repeat_interleave(k), var.repeat_interleave(k), w, b, training=False, momentum=0.0, eps=eps
    )


class _Batch1GroupNorm(nn.GroupNorm):
    """nn.GroupNorm with :func:`group_norm_b1` for batch-1 4D inputs (same parameters and keys)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[0] != 1:
            return super().forward(x)
        return group_norm_b1(x, self.num_groups, self.weight, self.bias, self.eps)


def use_fast_group_norm(module: nn.Module) -> int:
    """Switch every ``nn.GroupNorm`` in ``module`` to :class:`_Batch1GroupNorm` in place; returns the count."""
    n = 0
    for m in module.modules():
        if type(m) is nn.GroupNorm:
            m.__class__ = _Batch1GroupNorm
            n += 1
    return n


class _GraphedDenoise:
    """The guided denoising loop captured once as a CUDA graph (static input/output buffers)."""

    def __init__(self, fn: Callable, z: torch.Tensor, lr: torch.Tensor, cond: torch.Tensor, pool: Any):
        self.inputs = (z.clone(), lr.clone(), cond.clone())
        side = torch.cuda.Stream(device=z.device)
        side.wait_stream(torch.cuda.current_stream(z.device))
        with torch.cuda.stream(side):  # warm-up: lazy initialisations stay out of the graph
            fn(*self.inputs)
        torch.cuda.current_stream(z.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool):
            self.out = fn(*self.inputs)

    def __call__(self, z: torch.Tensor, lr: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        for buf, x in zip(self.inputs, (z, lr, cond)):
            buf.copy_(x)
        self.graph.replay()
        return self.out  # overwritten by the next replay: use before the next frame


def _without_cond_embedding(controlnet: nn.Module) -> nn.Module:
    """A shallow copy of ``controlnet`` (same parameters) whose condition embedding is the identity.

    The HR condition is embedded once per frame instead of once per denoising step.
    """
    cn = copy.copy(controlnet)
    cn._modules = dict(controlnet._modules)
    cn.controlnet_cond_embedding = nn.Identity()
    return cn


@dataclass
class StageTimes:
    """Seconds spent per stage (filled only with ``profile=True``; synchronises the device)."""

    flow: float = 0.0
    condition: float = 0.0
    denoise: float = 0.0
    decode: float = 0.0
    frames: int = 0
    extra: dict[str, float] = field(default_factory=dict)


class StreamDiffVSRUpscaler:
    """Causal x4 Stream-DiffVSR implementing the streaming protocol (``push`` / ``flush`` / ``reset``).

    Each pushed frame's output is returned by the same ``push`` (look-ahead 0: the paper's "one-frame
    latency" of a causal recurrent model). Options:

    * ``flow``: ``"raft"`` (official: RAFT-large, needs ``components.raft``), ``"dis"`` (OpenCV DIS,
      CPU) or ``"auto"`` (RAFT if weights were found, else DIS with a warning).
    * ``flow_resolution``: ``1.0`` / ``"hr"`` (official), ``0.5``, ... or ``"lr"`` (see FlowEstimator).
    * ``corr``: RAFT correlation, ``"all-pairs"``, ``"on-demand"`` or ``"auto"`` (on-demand when the
      all-pairs pyramid would exceed ``corr_budget_gb``, 6 GB: all-pairs up to 1080p output).
    * ``num_steps`` / ``timesteps``: 4 / trailing 999-749-499-249 by default (what the weights were distilled for).
    * ``seed``: per-frame noise is drawn in frame order from a generator seeded at every stream start.
    * ``compile``: ``torch.compile`` the UNet and ControlNet (first frames slower).
    * ``cuda_graphs``: replay the guided 4-step denoising loop as one CUDA graph (default: on for CUDA
      without ``compile``); removes the ~8k kernel launches per frame from the critical path.
    * ``channels_last``: NHWC for the HR convolutions (TAE, condition embedding); ``channels_last_unet``
      also for the UNet and ControlNet.
    * ``fast_group_norm``: batch-1 GroupNorm as reductions + batch norm (default on CUDA; PyTorch's
      kernel uses only 32 thread blocks at batch 1). Switches the given modules' GroupNorms in place.
    """

    def __init__(
        self,
        components: SDVSRComponents,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | None = None,
        *,
        flow: str = "auto",
        flow_resolution: float | str = 1.0,
        raft_iters: int = 12,
        flow_dtype: torch.dtype = torch.float32,
        corr: str = "auto",
        corr_budget_gb: float = 6.0,
        num_steps: int = 4,
        timesteps: list[int] | None = None,
        seed: int = 42,
        noise_device: torch.device | str | None = None,
        channels_last: bool = True,
        channels_last_unet: bool = False,
        fast_group_norm: bool | None = None,
        compile: bool = False,
        cuda_graphs: bool | None = None,
        profile: bool = False,
    ):
        self.device = torch.device(device)
        self.dtype = dtype or default_dtype(self.device)
        if self.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ModelError(f"unsupported dtype {self.dtype}")
        c = components
        self.components = c
        self.spec = ModelSpec(
            "stream-diffvsr",
            SCALE,
            latency=0,
            multiple=4,
            dtypes=(torch.bfloat16, torch.float16, torch.float32),
        )
        fmt = torch.channels_last if channels_last and self.device.type == "cuda" else torch.contiguous_format
        self._fmt = fmt  # for the HR convolutions only
        ufmt = torch.channels_last if channels_last_unet and self.device.type == "cuda" else torch.contiguous_format
        self._ufmt = ufmt
        self.unet = _place(c.unet, self.device, self.dtype, ufmt)
        controlnet = _place(c.controlnet, self.device, self.dtype, ufmt)
        if fast_group_norm is None:
            fast_group_norm = self.device.type == "cuda"
        if fast_group_norm:  # note: switches the given modules in place (same weights)
            use_fast_group_norm(self.unet)
            use_fast_group_norm(controlnet)
        self._cond_embedding = _place(controlnet.controlnet_cond_embedding, self.device, self.dtype, fmt)
        self._bgr = controlnet.config.controlnet_conditioning_channel_order == "bgr"
        self.controlnet = _without_cond_embedding(controlnet)
        self.vae = _place(c.vae, self.device, self.dtype, fmt)
        if cuda_graphs is None:
            cuda_graphs = self.device.type == "cuda" and not compile
        if cuda_graphs and self.device.type != "cuda":
            raise ModelError("cuda_graphs needs a CUDA device")
        self.cuda_graphs = cuda_graphs
        self._graphs: dict[tuple, _GraphedDenoise] = {}
        self._graph_pool = None
        if compile:
            self.unet = torch.compile(self.unet)
            self.controlnet = torch.compile(self.controlnet)
        self.prompt_embeds = c.prompt_embeds.to(self.device, self.dtype)
        prediction = c.scheduler.config.prediction_type
        if prediction not in ("v_prediction", "epsilon"):
            raise ModelError(f"scheduler prediction_type {prediction!r} is not supported")
        self._prediction = prediction
        self.schedule = ddim_schedule(c.scheduler, num_steps, timesteps)
        self._t = {t: torch.tensor(t, device=self.device, dtype=torch.long) for t, _, _ in self.schedule}

        if flow == "auto":
            if c.raft is None:
                warnings.warn(
                    "RAFT-large weights not found (see docs/streamdiffvsr.md); using OpenCV DIS flow instead,"
                    " which differs from the official setting",
                    stacklevel=2,
                )
            flow = "raft" if c.raft is not None else "dis"
        if flow == "raft" and c.raft is None:
            raise ModelError("flow='raft' needs RAFT-large weights (torchvision raft_large checkpoint)")
        if flow not in ("raft", "dis"):
            raise ModelError(f"unknown flow method {flow!r}: choose raft, dis or auto")
        raft = None
        if flow == "raft":
            raft = c.raft.to(device=self.device, dtype=flow_dtype)
            raft.corr_mode = corr
            raft.corr_budget_bytes = int(corr_budget_gb * 1e9)
        try:
            self.flow = FlowEstimator(flow, raft, SCALE, flow_resolution, raft_iters, flow_dtype)
        except ValueError as exc:
            raise ModelError(str(exc)) from exc
        self.seed = seed
        self.noise_device = torch.device(noise_device) if noise_device is not None else self.device
        self.profile = profile
        self.times = StageTimes()
        self.reset()

    # -- protocol ---------------------------------------------------------------------------
    def reset(self) -> None:
        self._prev_hr: torch.Tensor | None = None  # (1, 3, H, W) fp32, unclamped [-1, 1]
        self._prev_lr: torch.Tensor | None = None  # (1, 3, h, w) fp32, [-1, 1]
        self._gen = torch.Generator(device=self.noise_device).manual_seed(self.seed)
        self.frames_done = 0

    @torch.inference_mode()
    def push(self, frames: torch.Tensor) -> torch.Tensor:
        """``(T, 3, h, w)`` in [0, 1] (h, w multiples of 4) -> ``(T, 3, 4h, 4w)`` in [0, 1], float32."""
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise InputError(f"expected (T, 3, H, W) frames, got {tuple(frames.shape)}")
        h, w = frames.shape[-2:]
        if h % 4 or w % 4:
            raise InputError(f"frame size {w}x{h} is not a multiple of 4 (use the Engine, which pads)")
        if self._prev_lr is not None and self._prev_lr.shape[-2:] != (h, w):
            raise InputError(f"frame size changed mid-stream: {tuple(self._prev_lr.shape[-2:])} -> {(h, w)}")
        outs = torch.empty(frames.shape[0], 3, h * SCALE, w * SCALE, device=self.device)
        for i in range(frames.shape[0]):
            lr = frames[i : i + 1].to(self.device, torch.float32) * 2 - 1
            hr = self.step(lr)
            outs[i] = ((hr[0] + 1) / 2).clamp_(0, 1)
        return outs

    def flush(self) -> torch.Tensor:
        return torch.empty(0, 3, 0, 0, device=self.device)

    # -- one frame --------------------------------------------------------------------------
    def _tick(self, name: str, t0: float) -> float:
        if not self.profile:
            return t0
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t1 = time.perf_counter()
        setattr(self.times, name, getattr(self.times, name) + t1 - t0)
        return t1

    def _noise(self, h: int, w: int) -> torch.Tensor:
        z = torch.randn((1, 4, h, w), generator=self._gen, device=self.noise_device, dtype=torch.float32)
        return z.to(self.device)

    @torch.inference_mode()
    def step(self, lr: torch.Tensor) -> torch.Tensor:
        """One frame: LR ``(1, 3, h, w)`` in [-1, 1] -> unclamped HR ``(1, 3, 4h, 4w)`` float32."""
        t0 = time.perf_counter() if self.profile else 0.0
        if self.profile and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        h, w = lr.shape[-2:]
        z = self._noise(h, w)
        warped = cond = None
        if self._prev_hr is not None:
            flow = self.flow(lr, self._prev_lr)  # (1, 2, 4h, 4w), freed right after the warp
            warped = warp(self._prev_hr, flow).to(self.dtype).contiguous(memory_format=self._fmt)
            del flow
            t0 = self._tick("flow", t0)
            cond = self._cond_embedding(warped.flip(1) if self._bgr else warped)  # (1, C0, h, w)
            if self._bgr:
                cond = cond.flip(1)  # the ControlNet flips its input again
            cond = cond.contiguous(memory_format=self._ufmt)  # the layout of the UNet features it joins
            t0 = self._tick("condition", t0)
        z = self._denoise_graphed(z, lr, cond) if self.cuda_graphs and cond is not None else self.denoise(z, lr, cond)
        del cond
        t0 = self._tick("denoise", t0)
        feats = self.vae.features(warped) if warped is not None else None
        hr = self.vae.decode(z.to(self.dtype), feats).float()  # (1, 3, 4h, 4w)
        del feats, warped
        self._tick("decode", t0)
        if self._prev_hr is None or self._prev_hr.shape != hr.shape:
            self._prev_hr = torch.empty_like(hr)
            self._prev_lr = torch.empty_like(lr)
        self._prev_hr.copy_(hr)
        self._prev_lr.copy_(lr)
        self.frames_done += 1
        self.times.frames += int(self.profile)
        return hr

    def _denoise_graphed(self, z: torch.Tensor, lr: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        key = (tuple(z.shape), tuple(cond.shape))
        g = self._graphs.get(key)
        if g is None:
            self._graphs.clear()  # another resolution: drop the old graphs
            if self._graph_pool is None:
                self._graph_pool = torch.cuda.graph_pool_handle()
            try:
                g = _GraphedDenoise(self.denoise, z, lr, cond, self._graph_pool)
            except RuntimeError as exc:  # capture unsupported by some module: stay eager
                warnings.warn(f"CUDA graph capture failed ({_first_line(exc)}); running eagerly", stacklevel=3)
                self.cuda_graphs = False
                return self.denoise(z, lr, cond)
            self._graphs[key] = g
        return g(z, lr, cond)

    def denoise(self, z: torch.Tensor, lr: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """4-step DDIM from noise ``z`` (fp32) given LR ``(1, 3, h, w)`` and the embedded condition (or None)."""
        lr = lr.to(self.dtype)
        emb = self.prompt_embeds
        for t, a_t, a_prev in self.schedule:
            x = torch.cat([z.to(self.dtype), lr], dim=1).contiguous(memory_format=self._ufmt)  # (1, 7, h, w)
            tt = self._t[t]
            down = mid = None
            if cond is not None:
                down, mid = self.controlnet(
                    x,
                    tt,
                    encoder_hidden_states=emb,
                    controlnet_cond=cond,
                    conditioning_scale=1.0,
                    return_dict=False,
                )
            v = self.unet(
                x,
                tt,
                encoder_hidden_states=emb,
                down_block_additional_residuals=down,
                mid_block_additional_residual=mid,
                return_dict=False,
            )[0]
            z = ddim_step(z, v.float(), a_t, a_prev, self._prediction)
        return z


# ----------------------------------------------------------------------------------------------
# Registry entry point

_FLASHVSR_ONLY = ("decoder", "color_fix", "flashvsr_version")


def create_upscaler(
    weights: str | Path,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    *,
    raft_weights: str | Path | None = None,
    seed: int | None = None,
    attention: str | None = None,
    progress: Callable[[str], None] | None = None,
    **options: Any,
) -> StreamDiffVSRUpscaler:
    """Load ``weights`` (official folder layout) and build the streaming upscaler."""
    options.pop("num_frames", None)  # known length: irrelevant to a causal model
    for k in _FLASHVSR_ONLY:
        if options.get(k) is not None:
            raise ModelError(f"option {k.replace('_', '-')} does not apply to stream-diffvsr")
        options.pop(k, None)
    if attention not in (None, "auto", "dense"):
        raise ModelError(f"attention {attention!r} does not apply to stream-diffvsr (it uses PyTorch SDPA)")
    allowed = set(inspect.signature(StreamDiffVSRUpscaler.__init__).parameters) - {
        "self",
        "components",
        "device",
    }
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ModelError(f"unknown stream-diffvsr option(s): {', '.join(unknown)}")
    device = torch.device(device)
    dtype = dtype or default_dtype(device)
    if progress is not None:
        progress(f"loading Stream-DiffVSR from {weights}")
    comps = load_components(weights, device, dtype, raft_weights=raft_weights)
    return StreamDiffVSRUpscaler(comps, device, dtype, seed=42 if seed is None else seed, **options)
