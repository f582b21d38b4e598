"""torchrun / DDP / FSDP2 helpers that also work in a plain single process.

``init_distributed`` reads the torchrun environment (RANK, LOCAL_RANK, WORLD_SIZE); without it, everything
runs as rank 0 of 1 and the collective helpers are no-ops.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "DistInfo",
    "all_reduce_mean",
    "autocast",
    "barrier",
    "broadcast_object",
    "cleanup",
    "gather_objects",
    "init_distributed",
    "is_fsdp",
    "seed_everything",
    "unwrap",
    "wrap_model",
]


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return dist.is_available() and dist.is_initialized()


def init_distributed(device: str | None = None, backend: str | None = None) -> DistInfo:
    """Set up this process from the torchrun environment.

    device: "cuda", "cpu" or None (CUDA when available). Under torchrun each rank takes cuda:LOCAL_RANK.
    backend: process-group backend; default "nccl" on CUDA, "gloo" on CPU. Only used when WORLD_SIZE > 1.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    kind = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if kind.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device(kind)
    if world > 1 and not dist.is_initialized():
        be = backend or ("nccl" if dev.type == "cuda" else "gloo")
        kwargs: dict[str, Any] = {"device_id": dev} if be == "nccl" else {}
        dist.init_process_group(be, rank=rank, world_size=world, **kwargs)
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world, device=dev)


def cleanup() -> None:
    """Destroy the process group if one exists."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if _active():
        dist.barrier()


def seed_everything(seed: int, rank: int = 0) -> int:
    """Seed python, numpy and torch (all devices) with ``seed + rank``; returns the seed used."""
    s = seed + rank
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)
    return s


def all_reduce_mean(values: dict[str, float], device: torch.device | None = None) -> dict[str, float]:
    """Average a dict of floats over ranks (identity in a single process)."""
    if not _active() or not values:
        return dict(values)
    keys = sorted(values)
    dev = device or (torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else None)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= dist.get_world_size()
    return {k: float(v) for k, v in zip(keys, t.tolist())}


def all_reduce_grads(module: nn.Module) -> None:
    """Average the gradients of ``module`` over the ranks (for a module used outside DDP's forward)."""
    if not _active():
        return
    world = dist.get_world_size()
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(world)


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` as a list indexed by rank (``[obj]`` in a single process)."""
    if not _active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def wrap_model(
    model: nn.Module,
    info: DistInfo,
    mode: str = "ddp",
    shard_types: Iterable[type[nn.Module]] = (),
    forward_methods: Mapping[type[nn.Module], Sequence[str]] | None = None,
) -> nn.Module:
    """Wrap ``model`` for data-parallel training.

    mode: "ddp" (DistributedDataParallel), "fsdp" (FSDP2 ``fully_shard`` on every module of ``shard_types``,
    inner modules before the ones holding them, then on the root) or "none". In a single process the model is
    returned unchanged.

    Under "fsdp" the parameters and buffers are first broadcast from rank 0 (what DDP does at construction),
    so ranks that initialised differently start from the same weights. FSDP2 shards in place: the returned
    module is ``model`` itself, with DTensor parameters, so build the optimizer and the EMA *after* this call.
    ``forward_methods`` names methods other than ``forward`` that run a sharded module's parameters from
    outside its forward (e.g. ``{CrossAttention: ["kv"]}``); they get the FSDP all-gather / reshard hooks
    (``register_fsdp_forward_method``). Their types must be in ``shard_types``.
    """
    if mode not in ("ddp", "fsdp", "none"):
        raise ValueError(f"unknown parallel mode {mode!r}")
    if not _active() or mode == "none":
        return model
    if mode == "ddp":
        ids = [info.device.index] if info.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

    methods = dict(forward_methods or {})
    types = tuple(shard_types)
    if not set(methods) <= set(types):
        raise ValueError("forward_methods must name types that are in shard_types")
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            dist.broadcast(t.data, src=0)
    if types:
        # reversed pre-order puts every module after the modules it holds: FSDP2 is applied bottom-up
        for module in reversed(list(model.modules())):
            if isinstance(module, types) and module is not model:
                fully_shard(module)
                for kind, names in methods.items():
                    if isinstance(module, kind):
                        for name in names:
                            register_fsdp_forward_method(module, name)
    fully_shard(model)
    return model


def unwrap(model: nn.Module) -> nn.Module:
    """The bare module inside a DDP wrapper (FSDP2 shards in place, so it is returned as is)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def is_fsdp(model: nn.Module) -> bool:
    """True if FSDP2 ``fully_shard`` was applied to ``model``."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # pragma: no cover - old torch
        return False
    return isinstance(model, FSDPModule)


@contextlib.contextmanager
def autocast(device: torch.device, enabled: bool = True) -> Iterator[None]:
    """bf16 autocast on CUDA; plain fp32 elsewhere (or when disabled)."""
    if enabled and device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield
