"""Scaffolding every training recipe shares (stage 0, the TCDecoder stage, stages 1-3).

Device set-up, one optimiser step, the ST-LPIPS loss on a random subset of frames, and argument definitions
used by more than one recipe. The command-line entry points are in :mod:`streamvsr.recipes.entry`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from streamvsr.train import losses
from streamvsr.train.distributed import DistInfo
from streamvsr.train.ema import EMA

__all__ = [
    "add_ae_arg",
    "add_image_args",
    "add_optim_args",
    "add_run_args",
    "jsonable_args",
    "load_perceptual",
    "lpips_on_frames",
    "optimizer_step",
    "setup_device",
]

# ---------------------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------------------


def add_optim_args(p: argparse.ArgumentParser, *, lr: float, weight_decay: float, warmup_steps: int) -> None:
    """Optimiser flags: AdamW learning rate and weight decay, warm-up and schedule, gradient clipping, EMA."""
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--weight-decay", type=float, default=weight_decay)
    p.add_argument("--warmup-steps", type=int, default=warmup_steps)
    p.add_argument("--schedule", default="constant", choices=["constant", "cosine"])
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--ema-decay", type=float, default=0.999)


def add_run_args(p: argparse.ArgumentParser, ckpt_every: int = 500) -> None:
    """Run-length, slice, logging, checkpoint, seed and device flags."""
    p.add_argument("--total-steps", type=int, default=None, help="length of the whole run (and of cosine)")
    p.add_argument("--max-steps", type=int, default=None, help="stop this invocation after N steps")
    p.add_argument("--max-samples", type=int, default=None, help="stop this invocation after N samples")
    p.add_argument("--max-minutes", type=float, default=None, help="stop this invocation after N minutes")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--ckpt-every", type=int, default=ckpt_every)
    p.add_argument("--keep-ckpts", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")


def jsonable_args(args: argparse.Namespace) -> dict[str, Any]:
    """The flags of ``args`` that JSON can hold (for checkpoints)."""
    return {k: v for k, v in vars(args).items() if isinstance(v, (str, int, float, bool, list, type(None)))}


def add_ae_arg(p: argparse.ArgumentParser, required: bool = False) -> None:
    """``--ae``: the frozen stage-0 autoencoder the latents come from."""
    kw: dict[str, Any] = {"required": True} if required else {"default": None}
    p.add_argument("--ae", **kw, help="stage-0 autoencoder export folder (or its run dir)")


def add_image_args(p: argparse.ArgumentParser) -> None:
    """``--image-prob`` / ``--image-batch-mult``: the photo steps of joint image + video training."""
    p.add_argument(
        "--image-prob",
        type=float,
        default=None,
        help="share of photo steps (0 = video only; default: 0.2 when --data has photos, else 0)",
    )
    p.add_argument("--image-batch-mult", type=int, default=4, help="a photo step takes this many x images")


# ---------------------------------------------------------------------------------------------------------
# Device and optimisation
# ---------------------------------------------------------------------------------------------------------


def setup_device(info: DistInfo, no_bf16: bool, benchmark: bool = False) -> tuple[torch.device, bool]:
    """The rank's device and whether to autocast to bf16 (CUDA unless ``--no-bf16``); TF32 on CUDA, and the
    cuDNN autotuner too with ``benchmark``."""
    device = info.device
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        if benchmark:
            torch.backends.cudnn.benchmark = True
    return device, device.type == "cuda" and not no_bf16


def optimizer_step(
    loss: Tensor,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    grad_clip: float | None,
    ema: EMA | None = None,
) -> Tensor:
    """Backward ``loss``, clip the gradient norm of ``module`` (no clipping for 0 / None), step, update the
    EMA; returns the gradient norm before clipping."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(module.parameters(), grad_clip or float("inf"))
    optimizer.step()
    if ema is not None:
        ema.update(module)
    return grad_norm


# ---------------------------------------------------------------------------------------------------------
# Perceptual loss
# ---------------------------------------------------------------------------------------------------------


def load_perceptual(path: str | None, device: torch.device) -> losses.PerceptualFn:
    """ST-LPIPS (AlexNet, frozen; ``streamvsr.eval.stlpips``) as a loss on [-1, 1] images."""
    from streamvsr.eval.stlpips import load_stlpips

    net = load_stlpips(device=device, path=path)
    net.requires_grad_(False)

    def fn(x: Tensor, y: Tensor, weight: Tensor | None = None) -> Tensor:
        return net((x.float() + 1) / 2, (y.float() + 1) / 2, weight)

    return fn


def lpips_on_frames(
    fn: losses.PerceptualFn | None,
    x: Tensor,
    refs: Sequence[Tensor],
    n: int,
    gen: torch.Generator,
) -> list[Tensor]:
    """LPIPS of x (B, 3, F, H, W) against each ref on ``n`` random frames (the same frames for all; every
    frame when ``n`` is 0 or >= F); zeros when ``fn`` is None."""
    if fn is None:
        return [x.new_zeros((), dtype=torch.float32) for _ in refs]
    f = x.shape[2]
    if 0 < n < f:
        idx = torch.randperm(f, generator=gen, device=gen.device)[:n].sort().values.to(x.device)
        x = x.index_select(2, idx)
        refs = [r.index_select(2, idx) for r in refs]
    return [losses.perceptual(fn, x, r) for r in refs]
