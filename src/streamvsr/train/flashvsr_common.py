"""Shared pieces of the FlashVSR training recipes (TCDecoder stage, stages 1-3).

References: [FlashVSR] Zhuang et al., arXiv 2510.12747 (spec flashvsr.md §1.3-1.11, §5); [RF] Liu et al. 2022
(rectified flow); [Wan] Wan2.1 / DiffSynth ``FlowMatchScheduler(shift=5)``; [DMD] Yin et al. 2024, "One-step
Diffusion with Distribution Matching Distillation" (Eq. 7 and the gradient normalisation of Alg. 1);
[DMD2] Yin et al. 2024, "Improved Distribution Matching Distillation".

Training matches inference (``streamvsr.pipeline.flashvsr``) exactly in its bookkeeping (spec §1.3):

* the LR frames are upsampled x4 with :func:`upsample_lr`, the same op as the pipeline's ``torch`` mode;
* a training clip has ``N = 1 + 4T`` LR frames. Latent ``t`` gets its LQ tokens from LR frames ``4t+1 .. 4t+4``
  (frame 0 is the projector's warm-up frame), i.e. 4 frames *ahead* of what it decodes to; the ``T`` target
  latents are the autoencoder encoding of the first ``4T - 3`` HR frames (latent 0 <- frame 0, latent t <- frames
  ``4t-3 .. 4t``). The last 4 HR frames are the look-ahead and have no target of their own;
* an image is a 1-frame clip: one latent, LQ tokens from 5 copies of its LR frame (what the pipeline does with a
  still once it pads the tail with copies of the last frame);
* the TCDecoder condition is aligned with the frames a latent decodes to (``4t-3 .. 4t``; spec §1.11.2).

Batches are a pure function of ``(seed, step, rank)`` and so are the noise and timesteps of a step
(:func:`step_generator`), so a resumed run reproduces an uninterrupted one.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from streamvsr.errors import DataError, ModelError, StreamVSRError
from streamvsr.models.flashvsr.config import SIZES, AttentionConfig, FlashVSRConfig, TCDecoderConfig
from streamvsr.models.flashvsr.dit import WanDiT
from streamvsr.models.flashvsr.lq_proj import LQProjector
from streamvsr.models.flashvsr.tcdecoder import TCDecoder
from streamvsr.train import losses
from streamvsr.train.checkpoint import (
    find_latest,
    get_rng_state,
    load_checkpoint,
    model_state_dict,
    optimizer_state_dict,
    save_checkpoint,
    set_model_state_dict,
    set_optimizer_state_dict,
    set_rng_state,
)
from streamvsr.train.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    gather_objects,
    seed_everything,
    wrap_model,
)
from streamvsr.train.ema import EMA
from streamvsr.train.logger import JSONLLogger, Throughput, gpu_memory_stats
from streamvsr.train.recipe_utils import add_optim_args, add_run_args, jsonable_args, load_perceptual

__all__ = [
    "FRAMES_PER_LATENT",
    "SCALE",
    "ClipBatches",
    "FlashVSRNet",
    "TrainSession",
    "add_common_args",
    "add_dit_args",
    "build_perceptual",
    "check_clip_len",
    "clip_batches_from_args",
    "clip_latents",
    "decode_latent_pair",
    "dmd_loss",
    "export_ema_flashvsr",
    "export_flashvsr",
    "flow_matching_pair",
    "generate_x0",
    "hr_for_latents",
    "load_autoencoder_from",
    "load_net_state",
    "load_tcdecoder",
    "lq_input_frames",
    "perceptual_from_args",
    "resolve_manifest",
    "sample_sigmas",
    "step_generator",
    "to_video",
    "upsample_lr",
    "wrap_flashvsr",
]

SCALE = 4  # FlashVSR is x4 (spec §1.2)
FRAMES_PER_LATENT = 4
TIMESTEPS = 1000.0  # DiT timestep = sigma * 1000 ([Wan] num_train_timesteps; inference t = 1000 at sigma 1)


# ---------------------------------------------------------------------------------------------------------
# Bookkeeping (pure functions; spec §1.3)
# ---------------------------------------------------------------------------------------------------------


def clip_latents(num_lr_frames: int) -> int:
    """Latents T of a training clip of ``N = 1 + 4T`` LR frames (an image, N = 1, has one latent)."""
    if num_lr_frames == 1:
        return 1
    if num_lr_frames < 5 or (num_lr_frames - 1) % FRAMES_PER_LATENT:
        raise DataError(f"a FlashVSR training clip has 1 + 4T frames (T >= 1), got {num_lr_frames}")
    return (num_lr_frames - 1) // FRAMES_PER_LATENT


def check_clip_len(n: int, windowed: bool) -> int:
    """Validate ``--clip-len``; with block-sparse windows T must be even and >= 6 (call 0 = 3 windows)."""
    t = clip_latents(n)
    if windowed and (t % 2 or t < 6):
        raise DataError(f"--clip-len must be 1 + 8k >= 25 for the windowed causal attention, got {n}")
    return t


def upsample_lr(lr: Tensor) -> Tensor:
    """(B, F, 3, h, w) LR in [0, 1] -> (B, 3, F, 4h, 4w) in [-1, 1].

    The same op as the pipeline's default ``lq_upsample="torch"`` (bicubic, a = -0.75, on floats, clamped to
    [0, 1], then x*2-1); the pipeline then casts to its dtype (bf16 on CUDA), which autocast mirrors here.
    """
    b, f = lr.shape[:2]
    x = F.interpolate(lr.flatten(0, 1).float(), scale_factor=SCALE, mode="bicubic").clamp(0, 1)
    return (x * 2 - 1).unflatten(0, (b, f)).transpose(1, 2)


def lq_input_frames(lr_up: Tensor) -> Tensor:
    """Frames the LQ projector sees for a clip: (B, 3, 1 + 4T, H, W).

    A video of ``1 + 4T`` frames is used as is (frame 0 = warm-up, latent t <- frames 4t+1 .. 4t+4); an image
    (1 frame) becomes 5 copies of itself.
    """
    if lr_up.shape[2] == 1:
        return lr_up.expand(-1, -1, 1 + FRAMES_PER_LATENT, -1, -1)
    clip_latents(lr_up.shape[2])
    return lr_up


def hr_for_latents(hr: Tensor) -> Tensor:
    """HR frames that the T target latents encode: the first 4T - 3 of ``1 + 4T`` (all of an image)."""
    t = clip_latents(hr.shape[2])
    return hr[:, :, : FRAMES_PER_LATENT * t - 3]


def to_video(frames: Tensor, device: torch.device) -> Tensor:
    """(B, F, 3, H, W) in [0, 1] -> (B, 3, F, H, W) in [-1, 1] on ``device``."""
    return frames.to(device, non_blocking=True).float().transpose(1, 2).mul(2).sub(1)


# ---------------------------------------------------------------------------------------------------------
# Flow matching and DMD (pure functions)
# ---------------------------------------------------------------------------------------------------------


def step_generator(seed: int, step: int, rank: int, device: torch.device, stream: int = 0) -> torch.Generator:
    """A generator for the random draws of one (step, rank): a pure function of its arguments."""
    h = hashlib.blake2b(f"{seed}/{step}/{rank}/{stream}".encode(), digest_size=8).digest()
    g = torch.Generator(device=device)
    g.manual_seed(int.from_bytes(h, "little") & (2**63 - 1))
    return g


def sample_sigmas(
    n: int,
    shift: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    t_min: float = 0.0,
    t_max: float = 1.0,
) -> Tensor:
    """Noise levels in (0, 1) for training: u ~ U(t_min, t_max), then the timestep shift
    sigma = s u / (1 + (s - 1) u) with s = ``shift``.

    This is the continuous form of [Wan]'s ``FlowMatchScheduler(shift=5, sigma_min=0, extra_one_step=True)``
    used by FlashVSR (spec §1.4): training draws one of its shifted sigmas uniformly. s = 5 puts most samples
    at high noise, where the one-step student lives (sigma = 1 at inference).
    """
    u = torch.rand(n, generator=generator, device=device) * (t_max - t_min) + t_min
    return losses.shift_timesteps(u, shift) if shift != 1.0 else u


def flow_matching_pair(x0: Tensor, noise: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
    """x_t = (1 - sigma) x0 + sigma eps and the velocity target v = eps - x0 ([RF] Eq. 1, spec §1.4)."""
    return losses.flow_matching_xt(x0, noise, sigma), losses.flow_matching_target(x0, noise)


def dmd_loss(x0_gen: Tensor, real_x0: Tensor, fake_x0: Tensor) -> Tensor:
    """Distribution-matching loss whose gradient w.r.t. ``x0_gen`` is the normalised DMD gradient.

    grad = (fake_x0 - real_x0) / mean|x0_gen - real_x0| (per sample; [DMD] Eq. 7 with the weighting of its
    Alg. 1, as in [DMD2]); loss = 0.5 * mean((x0_gen - sg(x0_gen - grad))^2), so d loss / d x0_gen = grad / numel.
    Descending it moves the generator's samples towards the real score's estimate and away from the fake one.
    """
    with torch.no_grad():
        g, r, f = x0_gen.detach().float(), real_x0.float(), fake_x0.float()
        w = (g - r).abs().flatten(1).mean(1).clamp_min(1e-6)  # (B,)
        grad = torch.nan_to_num((f - r) / w.view(-1, *([1] * (g.ndim - 1))))
        target = g - grad
    return 0.5 * F.mse_loss(x0_gen.float(), target)


# ---------------------------------------------------------------------------------------------------------
# The trainable FlashVSR network: DiT + LQ projector
# ---------------------------------------------------------------------------------------------------------


class FlashVSRNet(nn.Module):
    """DiT + LQ projector as one module (one DDP wrapper, one optimiser, one EMA).

    State-dict keys are ``dit.*`` and ``lq_proj.*`` (the official key layouts inside). ``context`` is the fixed
    text context (1, L, text_dim) for DiTs without a learned context (a non-persistent buffer).
    """

    def __init__(self, cfg: FlashVSRConfig, context: Tensor | None = None) -> None:
        super().__init__()
        if not cfg.dit.learned_context and context is None:
            raise ModelError(f"the {cfg.version!r} DiT needs a text context tensor: pass --context FILE")
        self.cfg = cfg
        self.dit = WanDiT(cfg.dit)
        self.lq_proj = LQProjector(cfg.lq_proj)
        self.register_buffer("context", context, persistent=False)

    def lq_tokens(self, frames: Tensor, image_frames: Tensor | None = None, images_per_seq: int = 0) -> Tensor:
        """LQ tokens (B, T*h*w, dim) of (B, 3, 1+4T, H, W) frames, then ``images_per_seq`` images per sequence
        packed behind them (image_frames (B*k, 3, 5, H, W))."""
        tok = self.lq_proj(frames)
        if image_frames is not None:
            b = tok.shape[0]
            it = self.lq_proj(image_frames)  # (B*k, h*w, dim)
            tok = torch.cat([tok, it.reshape(b, images_per_seq * it.shape[1], it.shape[2])], dim=1)
        return tok

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        lq_frames: Tensor,
        *,
        image_frames: Tensor | None = None,
        images_per_seq: int = 0,
        segment_ids: Tensor | None = None,
        t_positions: Tensor | None = None,
        attn: AttentionConfig | None = None,
        causal: bool = False,
    ) -> Tensor:
        """Velocity (B, 16, T', h, w) for noisy latents x at DiT timesteps t (B,).

        attn None: full attention (with the block-diagonal ``segment_ids`` mask for packed image+video
        sequences); attn given with ``causal``: LCSA with the streaming window visibility, equal to the
        pipeline's chunked calls with a KV cache.
        """
        tok = self.lq_tokens(lq_frames, image_frames, images_per_seq)
        return self.dit(
            x,
            tok,
            t,
            self.context,
            t_positions=t_positions,
            segment_ids=segment_ids,
            attn=attn,
            causal=causal,
        )


def wrap_flashvsr(net: nn.Module, info: DistInfo, mode: str) -> nn.Module:
    """:func:`~streamvsr.train.distributed.wrap_model` for a :class:`FlashVSRNet` (or a bare ``WanDiT``).

    Under ``mode="fsdp"`` (FSDP2) the units are every DiT block's cross-attention (its ``kv`` runs from
    ``WanDiT.prepare``, outside the block, so it is a unit of its own with ``kv`` registered as a forward
    method), every DiT block (self-attention, FFN, norms, modulation) and the root (patch / time / text
    embeddings, head, LQ projector). Parameters are sharded in place: build optimizers and EMAs after this.
    """
    from streamvsr.models.flashvsr.dit import CrossAttention, DiTBlock

    return wrap_model(
        net, info, mode, shard_types=(CrossAttention, DiTBlock), forward_methods={CrossAttention: ("kv",)}
    )


def generate_x0(net: nn.Module, lq_frames: Tensor, noise: Tensor, attn: AttentionConfig) -> Tensor:
    """The one-step student: x0 = eps - v(eps, t = 1000) with block-sparse causal attention (spec §1.4, §1.9)."""
    t = torch.full((noise.shape[0],), TIMESTEPS, device=noise.device)
    v = net(noise, t, lq_frames, attn=attn, causal=True)
    return noise - v.float()


def decode_latent_pair(
    decoder: TCDecoder, latents: Tensor, cond: Tensor, k: int, n: int = 2
) -> tuple[Tensor, tuple[int, int]]:
    """Decode latents k .. k+n-1 with the TCDecoder's memory of latents 0 .. k-1 (those without gradient).

    latents (B, 16, T, h, w); cond (B, 3, 4T-3, H, W) the bicubic LR aligned with the output frames.
    Returns frames (B, 3, m, H, W) with gradient w.r.t. ``latents[:, :, k:k+n]`` and their index range
    [s, e) among the 4T-3 output frames ([FlashVSR] Stage 3: only 2 latents decoded, earlier ones detached).
    """
    t = latents.shape[2]
    if not 0 <= k <= t - n:
        raise ValueError(f"latent pair start {k} outside 0..{t - n}")
    decoder.reset()
    s = 0 if k == 0 else FRAMES_PER_LATENT * k - 3
    e = FRAMES_PER_LATENT * (k + n) - 3
    try:
        if k > 0:
            with torch.no_grad():
                decoder.decode(latents[:, :, :k].detach(), cond[:, :, :s], latents_per_pass=None)
        out = decoder.decode(latents[:, :, k : k + n], cond[:, :, s:e], latents_per_pass=None)
    finally:
        decoder.reset()
    return out, (s, e)


# ---------------------------------------------------------------------------------------------------------
# Loading frozen parts and initial weights
# ---------------------------------------------------------------------------------------------------------


def resolve_size(name: str) -> FlashVSRConfig:
    """A FlashVSR size by name, or a ``config.json`` path holding ``FlashVSRConfig.to_dict()`` (custom sizes)."""
    if name in SIZES:
        return SIZES[name]
    p = Path(name)
    if p.suffix == ".json" and p.is_file():
        try:
            return FlashVSRConfig.from_dict(json.loads(p.read_text()))
        except (ValueError, TypeError, KeyError) as e:
            raise ModelError(f"{p}: not a FlashVSR config ({e})") from None
    raise ModelError(f"unknown FlashVSR size {name!r}; known: {', '.join(sorted(SIZES))} or a config .json")


def _ckpt_or_none(path: Path) -> Path | None:
    if path.is_file() and path.suffix == ".pt":
        return path
    if path.is_dir():
        return find_latest(path)
    return None


def autoencoder_folder(path: str | Path) -> Path:
    """The export folder of a stage-0 autoencoder: ``path`` itself or the ``export/`` of a run dir."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"autoencoder folder not found: {p}")
    if not (p / "config.json").is_file() and (p / "export" / "config.json").is_file():
        p = p / "export"
    return p


def load_autoencoder_from(path: str | Path, device: torch.device) -> nn.Module:
    """The frozen stage-0 autoencoder from its export folder (or a stage-0 run dir holding ``export/``)."""
    from streamvsr.train.export import load_autoencoder

    ae = load_autoencoder(autoencoder_folder(path), device=device)
    ae.requires_grad_(False)
    return ae.eval()


def load_tcdecoder(path: str | Path, cfg: TCDecoderConfig | None, device: torch.device) -> TCDecoder:
    """A trained TCDecoder (EMA weights) from a TCDecoder run dir, its export folder or a FlashVSR folder.

    ``cfg`` is the config the caller needs (a mismatch raises); ``None`` takes the stored one.
    """
    from streamvsr.train.export import load_exported

    p = Path(path)
    if not p.exists():
        raise ModelError(f"TCDecoder path not found: {p}")
    ckpt = _ckpt_or_none(p)
    if ckpt is not None:
        state = load_checkpoint(ckpt)
        if state.get("recipe") != "tcdecoder":
            raise ModelError(f"{ckpt} is not a TCDecoder checkpoint (recipe {state.get('recipe')!r})")
        got = state["config"].get("tcdecoder")
        sd = state["emas"]["decoder"]["weights"] if "decoder" in state.get("emas", {}) else state["modules"]["decoder"]
    elif (p / "tcdecoder.safetensors").is_file() or (p / "tcdecoder.safetensors.index.json").is_file():
        sd, conf = load_exported(p, name="tcdecoder")
        got = conf.get("tcdecoder")
    elif (p / "config.json").is_file():
        from streamvsr.pipeline.flashvsr_weights import load_flashvsr_folder

        fcfg, mods = load_flashvsr_folder(p, decoder="tiny")
        sd = mods["decoder"].state_dict()
        got = None if fcfg.decoder is None else _jsonable(fcfg.decoder)
    else:
        raise ModelError(f"{p}: no TCDecoder checkpoint, export or FlashVSR folder")
    try:
        stored = None if got is None else TCDecoderConfig.from_dict(got)
    except (TypeError, ValueError) as e:
        raise ModelError(f"{p}: unreadable TCDecoder config: {e}") from None
    if cfg is None:
        if stored is None:
            raise ModelError(f"{p}: no TCDecoder config stored there")
        cfg = stored
    if stored != cfg:
        raise ModelError(f"{p}: the TCDecoder there has config {got}, this run needs {_jsonable(cfg)}")
    dec = TCDecoder(cfg)
    try:
        dec.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    except RuntimeError as e:
        raise ModelError(f"{p}: TCDecoder weights do not fit: {str(e).splitlines()[0]}") from None
    dec.requires_grad_(False)
    return dec.to(device).eval()


def _jsonable(obj: Any) -> Any:
    import dataclasses

    d = dataclasses.asdict(obj)
    return json.loads(json.dumps(d))


def load_net_state(path: str | Path, cfg: FlashVSRConfig, prefer: str = "ema", slot: str = "net") -> dict[str, Tensor]:
    """``FlashVSRNet`` weights from a stage-1/2/3 run dir or checkpoint (``prefer`` "ema" or "raw") or from a
    FlashVSR weights folder (ours or official). The DiT and projector configs must equal ``cfg``'s."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"initial weights not found: {p}")
    ckpt = _ckpt_or_none(p)
    if ckpt is not None:
        state = load_checkpoint(ckpt)
        got = (state.get("config") or {}).get("flashvsr")
        if not got or got.get("dit") != cfg.to_dict()["dit"] or got.get("lq_proj") != cfg.to_dict()["lq_proj"]:
            raise ModelError(f"{ckpt}: its DiT / LQ projector config differs from --size {cfg.version!r}")
        if slot not in state.get("modules", {}):
            raise ModelError(f"{ckpt}: no {slot!r} weights (recipe {state.get('recipe')!r})")
        if prefer == "ema" and slot in state.get("emas", {}):
            sd = state["emas"][slot]["weights"]
        else:
            sd = state["modules"][slot]
        return {k: v for k, v in sd.items() if k != "context"}  # the fixed context is not a weight
    from streamvsr.pipeline.flashvsr_weights import load_flashvsr_folder

    fcfg, mods = load_flashvsr_folder(p)
    if fcfg.dit != cfg.dit or fcfg.lq_proj != cfg.lq_proj:
        raise ModelError(f"{p}: its DiT / LQ projector config differs from --size {cfg.version!r}")
    sd = {f"dit.{k}": v for k, v in mods["dit"].state_dict().items()}
    sd.update({f"lq_proj.{k}": v for k, v in mods["lq_proj"].state_dict().items()})
    return sd


def load_context(path: str | None, cfg: FlashVSRConfig) -> Tensor | None:
    """The fixed text context for DiTs without a learned one: a (1, L, text_dim) tensor file."""
    if cfg.dit.learned_context:
        return None
    if path is None:
        raise ModelError(f"size {cfg.version!r} has no learned context: pass --context posi_prompt.pth")
    p = Path(path)
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        d = load_file(str(p))
        if len(d) != 1:
            raise ModelError(f"{p}: expected one tensor, found {len(d)}")
        t = next(iter(d.values()))
    else:
        t = torch.load(p, map_location="cpu", weights_only=True)
        if isinstance(t, dict) and len(t) == 1:
            t = next(iter(t.values()))
    if not isinstance(t, Tensor) or t.ndim != 3 or t.shape[2] != cfg.dit.text_dim:
        raise ModelError(f"{p}: expected a (1, L, {cfg.dit.text_dim}) context tensor")
    return t.float()


def export_flashvsr(
    folder: str | Path,
    cfg: FlashVSRConfig,
    net_state: dict[str, Tensor],
    decoder: TCDecoder,
    context: Tensor | None,
) -> list[Path]:
    """Write a FlashVSR weights folder (our layout: config.json + dit / lq_proj / decoder safetensors, each file
    <= 16 MiB) loadable by :func:`streamvsr.pipeline.flashvsr_weights.load_flashvsr_folder`."""
    from streamvsr.pipeline.flashvsr_weights import save_flashvsr

    net = FlashVSRNet(cfg, context)
    net.load_state_dict({k: v.float() for k, v in net_state.items() if k != "context"}, strict=True)
    dec = copy.deepcopy(decoder).cpu().float()
    mods: dict[str, Any] = {"dit": net.dit, "lq_proj": net.lq_proj, "decoder": dec}
    if context is not None:
        mods["context"] = context.cpu()
    return save_flashvsr(folder, cfg, mods)


def export_ema_flashvsr(
    folder: str | None,
    info: DistInfo,
    cfg: FlashVSRConfig,
    ema: EMA,
    decoder: TCDecoder | None,
    context: Tensor | None,
) -> dict[str, Any]:
    """:func:`export_flashvsr` of the EMA weights to ``folder`` on rank 0 (nothing when ``folder`` is None),
    then a barrier; returns ``{"export_files": [...]}`` (rank 0) or ``{}``."""
    out: dict[str, Any] = {}
    if folder and (info.is_main or ema.sharded):
        weights = ema.weights(rank0_only=True)  # collective under FSDP2
        if info.is_main:
            files = export_flashvsr(folder, cfg, weights, decoder, context)  # type: ignore[arg-type]
            out["export_files"] = [str(f) for f in files]
    barrier()
    return out


# ---------------------------------------------------------------------------------------------------------
# Perceptual loss (optional)
# ---------------------------------------------------------------------------------------------------------


def build_perceptual(
    weight: float, path: str | None, device: torch.device, on_missing: Callable[[str], None] | None = None
) -> losses.PerceptualFn | None:
    """ST-LPIPS (``streamvsr.eval.stlpips``) on [-1, 1] images, frozen; None when ``weight`` is 0 or when its
    weights are not available (then ``on_missing`` gets the reason and the term is dropped)."""
    if weight <= 0:
        return None
    try:
        return load_perceptual(path, device)
    except (StreamVSRError, OSError, ImportError, RuntimeError) as e:
        if on_missing is not None:
            on_missing(str(e).splitlines()[0] if str(e) else type(e).__name__)
        return None


def perceptual_from_args(
    args: argparse.Namespace, device: torch.device
) -> tuple[losses.PerceptualFn | None, dict[str, Any]]:
    """:func:`build_perceptual` for ``--lpips-weight`` / ``--lpips-weights``, and the fields that say in the
    start log line whether LPIPS runs (``lpips``) and why not (``lpips_missing``)."""
    missing: list[str] = []
    fn = build_perceptual(args.lpips_weight, args.lpips_weights, device, missing.append)
    return fn, {"lpips": None if fn is None else "st-lpips", "lpips_missing": missing[0] if missing else None}


# ---------------------------------------------------------------------------------------------------------
# Data: deterministic per-step batches from VSRDataset
# ---------------------------------------------------------------------------------------------------------


def resolve_manifest(data: Sequence[str], cache_dir: Path, is_main: bool = True) -> list[Any]:
    """Manifest entries for ``--data`` values: JSON-lines manifests, or folders to index.

    A folder holding ``video/`` and/or ``images/`` (like ``../shared/data/train``) is indexed with those
    layouts; any other folder with ``layout="auto"``. Indexes are cached in ``cache_dir`` (rank 0 writes).
    """
    from streamvsr.train.data import DataRoot, ensure_manifest, load_manifest

    entries: list[Any] = []
    for item in data:
        p = Path(item)
        if p.is_file():
            entries.extend(load_manifest(p))
            continue
        if not p.is_dir():
            raise DataError(f"--data {p}: no such manifest or folder")
        roots = [DataRoot(p / sub, sub) for sub in ("video", "images") if (p / sub).is_dir()]  # type: ignore[arg-type]
        roots = roots or [DataRoot(p, "auto")]
        key = hashlib.blake2b(
            json.dumps([[str(r.path.resolve()), r.layout] for r in roots]).encode(), digest_size=6
        ).hexdigest()
        out = cache_dir / f"manifest-{key}.jsonl"
        if is_main:
            entries.extend(ensure_manifest(roots, out))
        barrier()
        if not is_main:
            entries.extend(load_manifest(out))
    if not entries:
        raise DataError("no training data found in --data")
    return entries


@dataclass
class Batch:
    """One step's data on the host: kind "video", "image" or "pack"; hr/lr (B, F, 3, H, W) in [0, 1]."""

    kind: str
    hr: Tensor
    lr: Tensor
    image_hr: Tensor | None = None  # "pack": (B*k, 1, 3, H, W)
    image_lr: Tensor | None = None


class ClipBatches(torch.utils.data.Dataset):
    """Step-indexed batches: ``self[step]`` is rank ``rank``'s :class:`Batch` of that step.

    Video clips (``clip_len`` frames) and images come from two :class:`~streamvsr.train.data.VSRDataset` views
    of the same manifest; sample ``i`` of step ``s`` is VSRDataset item ``(epoch=s, index=rank*n+i)``, so the
    data is a pure function of (seed, step, rank). Step kinds: "image" with probability ``image_prob`` when
    images exist (batch ``batch_size * image_batch_mult``), else "video" (``image_prob=None``: the default share
    when there are photos, see :func:`~streamvsr.train.data.resolve_image_prob`; a share > 0 without photos is an
    error); with ``pack_images = k > 0`` every
    step is "pack" (a video batch + k images per clip, packed behind it with a segment mask).
    """

    def __init__(
        self,
        entries: Sequence[Any],
        *,
        clip_len: int,
        crop: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        degradation: str = "mix",
        image_prob: float | None = 0.0,
        image_batch_mult: int = 1,
        pack_images: int = 0,
        strides: tuple[int, ...] = (1, 2),
        max_zoom_out: float = 1.0,
        fixed: bool = False,
    ) -> None:
        from streamvsr.train.data import VSRDataset, resolve_image_prob

        self.batch_size, self.seed, self.rank = batch_size, seed, rank
        self.image_batch_mult = max(1, image_batch_mult)
        self.pack_images = pack_images
        self.fixed = fixed
        common = {
            "crop": crop,
            "scale": SCALE,
            "degradation": degradation,
            "seed": seed,
            "max_zoom_out": max_zoom_out,
        }
        self.video: VSRDataset | None = None
        self.image: VSRDataset | None = None
        has_videos = any(e.kind != "image" and e.frames >= clip_len for e in entries)
        if clip_len > 1 and has_videos:
            self.video = VSRDataset(entries, clip_len=clip_len, image_prob=0.0, strides=strides, **common)
            if not self.video.videos:
                self.video = None
        wants_images = image_prob is None or image_prob > 0 or pack_images > 0 or clip_len == 1
        if wants_images and any(e.kind == "image" for e in entries):
            ds = VSRDataset(entries, clip_len=1, image_prob=1.0, **common)
            self.image = ds if ds.images else None
        if self.video is None and self.image is None:
            raise DataError(f"no usable clips of {clip_len} frames (or images) of at least {crop}x{crop} in --data")
        self.image_prob = resolve_image_prob(image_prob, self.image is not None)  # the share actually used
        if pack_images > 0 and (self.video is None or self.image is None):
            raise DataError("--pack-images needs both video clips and images in --data")

    def __len__(self) -> int:
        return 2**62

    def kind(self, step: int) -> str:
        """The kind of a global step (the same on every rank)."""
        if self.pack_images > 0:
            return "pack"
        if self.image is None:
            return "video"
        if self.video is None:
            return "image"
        rng = np.random.default_rng([self.seed, step, 11])
        return "image" if rng.random() < self.image_prob else "video"

    def _take(self, ds: Any, step: int, n: int) -> tuple[Tensor, Tensor]:
        items = [ds[(step, self.rank * n + i)] for i in range(n)]
        return torch.stack([s["hr"] for s in items]), torch.stack([s["lr"] for s in items])

    def __getitem__(self, step: int) -> Batch:
        step = 0 if self.fixed else int(step)
        kind = self.kind(step)
        if kind == "image":
            hr, lr = self._take(self.image, step, self.batch_size * self.image_batch_mult)
            return Batch("image", hr, lr)
        hr, lr = self._take(self.video, step, self.batch_size)
        if kind == "pack":
            ihr, ilr = self._take(self.image, step, self.batch_size * self.pack_images)
            return Batch("pack", hr, lr, ihr, ilr)
        return Batch("video", hr, lr)


def clip_batches_from_args(args: argparse.Namespace, info: DistInfo, cache_dir: Path, **kw: Any) -> ClipBatches:
    """:class:`ClipBatches` of the ``--data`` manifest (indexed into ``cache_dir``) with the shared flags of
    :func:`add_common_args`; ``kw`` are the recipe's own (image_prob, pack_images, ...)."""
    entries = resolve_manifest(args.data, cache_dir, info.is_main)
    return ClipBatches(
        entries,
        clip_len=args.clip_len,
        crop=args.crop,
        batch_size=args.batch_size,
        seed=args.seed,
        rank=info.rank,
        degradation=args.degradation,
        strides=parse_strides(args.strides),
        max_zoom_out=args.max_zoom_out,
        fixed=args.fixed_batch,
        **kw,
    )


class _Steps(torch.utils.data.Sampler[int]):
    def __init__(self, start: int) -> None:
        self.start = start

    def __iter__(self) -> Iterator[int]:
        s = self.start
        while True:
            yield s
            s += 1


def _collate(b: Batch) -> Batch:
    return b


def _worker_init(worker_id: int) -> None:
    from streamvsr.train.data import worker_init

    worker_init(worker_id)


def batch_iterator(
    data: torch.utils.data.Dataset, start_step: int, workers: int, fixed: bool = False
) -> Iterator[Batch]:
    """Batches of steps ``start_step, start_step + 1, ...`` in order, loaded by ``workers`` processes.

    fixed: the data gives one batch for every step (``--fixed-batch``); load it once and repeat it, so a
    fixed-batch run measures the training step, not the loaders.
    """
    if fixed:
        one = data[start_step]
        return iter(lambda: one, None)
    loader = torch.utils.data.DataLoader(
        data,
        batch_size=None,
        sampler=_Steps(start_step),
        num_workers=workers,
        collate_fn=_collate,
        worker_init_fn=_worker_init if workers else None,
        multiprocessing_context="forkserver" if workers else None,  # see train.data.WORKER_CONTEXT
        prefetch_factor=2 if workers else None,
        pin_memory=torch.cuda.is_available(),
    )
    return iter(loader)


# ---------------------------------------------------------------------------------------------------------
# Command line and the training session (checkpoints, resume, slices, logs)
# ---------------------------------------------------------------------------------------------------------


def add_common_args(
    p: argparse.ArgumentParser,
    *,
    clip_len: int,
    crop: int,
    batch_size: int,
    lr: float,
    ckpt_every: int = 500,
) -> None:
    """Flags every FlashVSR recipe shares (data, slices, optimiser, logging, parallelism)."""
    p.add_argument("--run-dir", required=True, help="checkpoints, log.jsonl and the data index go here")
    p.add_argument("--size", default="fast", help=f"FlashVSR size ({', '.join(sorted(SIZES))}) or a config .json")
    p.add_argument("--data", action="append", default=[], help="data folder or manifest .jsonl (repeatable)")
    p.add_argument("--clip-len", type=int, default=clip_len, help="LR frames per clip, 1 + 4T")
    p.add_argument("--crop", type=int, default=crop, help="HR square crop (multiple of 128 for windows)")
    p.add_argument("--batch-size", type=int, default=batch_size, help="clips per rank and step")
    p.add_argument(
        "--degradation",
        default="mix",
        help="LR synthesis: bi, bd, real, mix or a mixture such as bi:0.5,real:0.3,bd:0.2",
    )
    p.add_argument("--strides", default="1,2", help="frame strides a clip may use")
    p.add_argument("--max-zoom-out", type=float, default=1.0, help="random downscale of large sources")
    add_optim_args(p, lr=lr, weight_decay=0.01, warmup_steps=100)
    add_run_args(p, ckpt_every=ckpt_every)
    p.add_argument(
        "--parallel",
        default="ddp",
        choices=["ddp", "fsdp", "none"],
        help="under torchrun: DDP, or FSDP2 (DiT blocks + root sharded; checkpoints stay full) for large sizes",
    )
    p.add_argument("--no-bf16", action="store_true", help="fp32 on CUDA too")
    p.add_argument("--grad-checkpointing", action="store_true")
    p.add_argument("--workers", type=int, default=4, help="data-loading processes (0 = in the main process)")
    p.add_argument("--fixed-batch", action="store_true", help="reuse the step-0 batch and noise (overfit checks)")
    p.add_argument("--lpips-weights", default=None, help="alex_shift_tolerant.pth (default: the stlpips wheel)")


def add_dit_args(p: argparse.ArgumentParser, shift: float = 5.0) -> None:
    """Flags of the DiT stages (1-3): initial weights, export, text context, attention backend, timestep shift."""
    p.add_argument(
        "--init",
        default=None,
        help="initial weights: a run dir / ckpt of an earlier stage or a FlashVSR folder",
    )
    p.add_argument("--init-weights", default="ema", choices=["ema", "raw"], help="which weights of a checkpoint")
    p.add_argument("--tcdecoder", default=None, help="TCDecoder run dir or export (needed by --export)")
    p.add_argument("--export", default=None, help="write a FlashVSR weights folder (EMA weights) here at the end")
    p.add_argument("--export-only", action="store_true", help="export the latest checkpoint and exit")
    p.add_argument("--context", default=None, help="fixed text context tensor for sizes without a learned one")
    p.add_argument("--attn-backend", default="auto", choices=["auto", "dense", "flex", "full"])
    p.add_argument("--shift", type=float, default=shift, help="timestep shift of the training noise levels")


def parse_strides(s: str) -> tuple[int, ...]:
    try:
        out = tuple(int(x) for x in s.split(",") if x.strip())
    except ValueError:
        raise DataError(f"--strides must be comma-separated integers, got {s!r}") from None
    if not out or min(out) < 1:
        raise DataError(f"--strides must be positive, got {s!r}")
    return out


@dataclass
class _Slot:
    module: nn.Module
    optimizer: torch.optim.Optimizer | None
    ema: EMA | None


class TrainSession:
    """Checkpointing, auto-resume, slice limits and JSONL logging shared by the recipes.

    Register the trainable modules with :meth:`add` (the bare modules, not DDP wrappers; under FSDP2 the module
    after sharding, which is in place), call :meth:`resume`, then :meth:`open_log`. A checkpoint holds every
    slot's weights, optimiser and EMA as full (unsharded) state dicts written by rank 0 whatever the parallel
    mode, the step and sample counters, every rank's RNG state, the recipe name and its config (a resume with
    another config fails).
    """

    def __init__(
        self,
        args: argparse.Namespace,
        info: DistInfo,
        recipe: str,
        config: dict[str, Any],
        callback: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.args, self.info, self.recipe = args, info, recipe
        self.config = json.loads(json.dumps(config))
        self.callback = callback
        self.run_dir = Path(args.run_dir)
        if info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        barrier()
        self.slots: dict[str, _Slot] = {}
        self.step = 0
        self.samples = 0
        self.resumed_from: Path | None = None
        self.t_start = time.perf_counter()
        self.logger: JSONLLogger | None = None
        self.meter = Throughput()
        self._slice_step = 0
        self._slice_samples = 0
        self.last_saved = -1

    def add(self, name: str, module: nn.Module, optimizer: torch.optim.Optimizer | None, ema: EMA | None) -> None:
        self.slots[name] = _Slot(module, optimizer, ema)

    def resume(self) -> bool:
        """Load the run dir's latest checkpoint if there is one; True when resumed."""
        path = find_latest(self.run_dir)
        if path is None:
            return False
        state = load_checkpoint(path)
        if state.get("recipe") != self.recipe or state.get("config") != self.config:
            raise StreamVSRError(
                f"{path} was written by another recipe or config ({state.get('recipe')}); use a new --run-dir"
            )
        for name, slot in self.slots.items():
            set_model_state_dict(slot.module, state["modules"][name])
            if slot.optimizer is not None:
                set_optimizer_state_dict(slot.module, slot.optimizer, state["optimizers"][name])
            if slot.ema is not None:
                slot.ema.load_state_dict(state["emas"][name])
        self.step, self.samples = int(state["step"]), int(state["samples"])
        rngs = state.get("rng") or []
        if len(rngs) == self.info.world_size:
            set_rng_state(rngs[self.info.rank])
        else:
            seed_everything(self.args.seed + 1000003 * self.step, self.info.rank)
        self.resumed_from = path
        self.last_saved = self.step
        return True

    def open_log(self, **extra: Any) -> None:
        self.logger = JSONLLogger(
            self.run_dir / "log.jsonl",
            enabled=self.info.is_main,
            resume_step=self.step if self.resumed_from is not None else None,
            callback=self.callback,
        )
        self._slice_step, self._slice_samples = self.step, self.samples
        self.log_event(
            "start",
            step=self.step,
            samples=self.samples,
            resumed_from=self.resumed_from.name if self.resumed_from else None,
            world_size=self.info.world_size,
            device=str(self.info.device),
            **extra,
        )

    def log_event(self, event: str, **fields: Any) -> None:
        if self.info.is_main and self.logger is not None:
            self.logger.log({"event": event, "step": self.step, **fields})

    def save(self) -> None:
        payload: dict[str, Any] = {
            "recipe": self.recipe,
            "config": self.config,
            "modules": {n: model_state_dict(s.module) for n, s in self.slots.items()},
            "optimizers": {
                n: optimizer_state_dict(s.module, s.optimizer) for n, s in self.slots.items() if s.optimizer
            },
            "emas": {n: s.ema.state_dict(rank0_only=True) for n, s in self.slots.items() if s.ema is not None},
            "rng": gather_objects(get_rng_state()),
            "step": self.step,
            "samples": self.samples,
            "args": jsonable_args(self.args),
        }
        if self.info.is_main:
            save_checkpoint(self.run_dir, payload, self.step, keep=self.args.keep_ckpts)
        barrier()
        self.last_saved = self.step

    def stop_reason(self) -> str | None:
        a = self.args
        if a.total_steps is not None and self.step >= a.total_steps:
            return "total_steps"
        if a.max_steps is not None and self.step - self._slice_step >= a.max_steps:
            return "max_steps"
        if a.max_samples is not None and self.samples - self._slice_samples >= a.max_samples:
            return "max_samples"
        if a.max_minutes is not None and (time.perf_counter() - self.t_start) / 60 >= a.max_minutes:
            return "max_minutes"
        return None

    def advance(self, n_local: int) -> None:
        """One optimisation step done on ``n_local`` samples per rank."""
        n = n_local * self.info.world_size
        self.step += 1
        self.samples += n
        self.meter.add(n)

    def maybe_log(self, stats: dict[str, float], **extra: Any) -> None:
        """Log (averaged over ranks) every ``--log-every`` steps and at step 1; checkpoint every ``--ckpt-every``."""
        if self.step % self.args.log_every == 0 or self.step == 1:
            avg = all_reduce_mean(stats, device=self.info.device)
            rec = {
                "step": self.step,
                "samples": self.samples,
                **avg,
                **extra,
                "samples_per_s": self.meter.rate(),
            }
            rec.update(gpu_memory_stats(self.info.device))
            if self.info.is_main and self.logger is not None:
                self.logger.log(rec)
        bad = [k for k, v in stats.items() if not math.isfinite(v)]
        if bad:
            raise FloatingPointError(f"non-finite {', '.join(bad)} at step {self.step}")
        if self.args.ckpt_every and self.step % self.args.ckpt_every == 0:
            self.save()

    def finish(self, stopped: str | None, **summary: Any) -> dict[str, Any]:
        if self.step != self.last_saved:
            self.save()
        out = {"step": self.step, "samples": self.samples, "stopped": stopped, **summary}
        self.log_event("end", **out, minutes=(time.perf_counter() - self.t_start) / 60)
        return out
