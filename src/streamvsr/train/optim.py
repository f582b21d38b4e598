"""AdamW with sensible weight-decay groups, and the learning-rate schedule (pure function)."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["lr_at", "make_adamw", "set_lr"]


def make_adamw(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.99),
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    """AdamW; matrices/kernels get ``weight_decay``, biases and norm scales (ndim < 2) get none.

    Uses the fused CUDA kernel when every parameter lives on CUDA.
    """
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = all(p.is_cuda for p in decay + no_decay) and bool(decay + no_decay)
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=fused or None)


def lr_at(
    step: int,
    base_lr: float,
    warmup_steps: int = 0,
    total_steps: int | None = None,
    schedule: str = "constant",
    min_ratio: float = 0.1,
) -> float:
    """Learning rate for ``step`` (0-based): linear warm-up over ``warmup_steps`` from base/warmup to base,
    then ``"constant"`` or ``"cosine"`` decay to ``min_ratio * base`` at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant" or total_steps is None:
        return base_lr
    if schedule != "cosine":
        raise ValueError(f"unknown lr schedule {schedule!r}")
    span = max(total_steps - warmup_steps, 1)
    frac = min(max(step - warmup_steps, 0) / span, 1.0)
    return base_lr * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * frac)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
