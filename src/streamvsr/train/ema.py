"""Exponential moving average of model weights.

The shadow copy is kept in fp32 next to the model (sharded like the model under FSDP2). ``state_dict`` returns
full tensors on every rank, so rank 0 can save or export it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["EMA"]


def _full(t: Tensor) -> Tensor:
    """A DTensor's full value (collective); a plain tensor unchanged."""
    full_tensor = getattr(t, "full_tensor", None)
    return full_tensor() if callable(full_tensor) else t


def _local(t: Tensor) -> Tensor:
    to_local = getattr(t, "to_local", None)
    return to_local() if callable(to_local) else t


class EMA:
    """EMA of a model's floating-point parameters and buffers.

    ema = decay * ema + (1 - decay) * weights, with decay_eff = min(decay, (1 + n) / (10 + n)) during the
    first updates when ``warmup`` is on (n = number of updates so far).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.num_updates = 0
        self.shadow: dict[str, Tensor] = {name: t.detach().clone().float() for name, t in self._tracked(model).items()}

    @staticmethod
    def _tracked(model: nn.Module) -> dict[str, Tensor]:
        out = {n: p for n, p in model.named_parameters() if p.requires_grad}
        out.update({n: b for n, b in model.named_buffers() if b.is_floating_point()})
        return out

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        n = self.num_updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the shadow towards the model's current weights."""
        weight = 1.0 - self.current_decay()
        tracked = self._tracked(model)
        names = list(self.shadow)
        ema = [_local(self.shadow[n]) for n in names]
        cur = [_local(tracked[n].detach()).float() for n in names]
        torch._foreach_lerp_(ema, cur, weight)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Write the EMA weights into ``model`` (same structure and sharding as the tracked model)."""
        tracked = self._tracked(model)
        for name, value in self.shadow.items():
            _local(tracked[name]).copy_(_local(value).to(tracked[name].dtype))

    @contextlib.contextmanager
    def swapped_into(self, model: nn.Module) -> Iterator[nn.Module]:
        """Temporarily load the EMA weights into ``model`` (e.g. for evaluation), then restore them."""
        tracked = self._tracked(model)
        backup = {n: _local(t).detach().clone() for n, t in tracked.items() if n in self.shadow}
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, value in backup.items():
                    _local(tracked[name]).copy_(value)

    @property
    def sharded(self) -> bool:
        """True when the shadow holds DTensor shards (the tracked model was sharded with FSDP2)."""
        return any(hasattr(t, "device_mesh") for t in self.shadow.values())

    def state_dict(self, rank0_only: bool = False) -> dict[str, object]:
        """Full (unsharded) fp32 weights plus counters. Collective under FSDP2: call it on every rank.

        rank0_only: under FSDP2, ranks other than 0 drop each gathered tensor at once and get empty ``weights``
        (no full CPU copy per rank); without sharding every rank gets its own copy either way.
        """
        keep = not (rank0_only and self.sharded and dist.is_initialized() and dist.get_rank() != 0)
        weights = {}
        for n, t in self.shadow.items():
            full = _full(t).detach()
            if keep:
                weights[n] = full.cpu().clone()
        return {"decay": self.decay, "num_updates": self.num_updates, "weights": weights}

    def weights(self, rank0_only: bool = False) -> dict[str, Tensor]:
        """Full fp32 EMA weights by model state-dict key (collective under FSDP2; see :meth:`state_dict`)."""
        return self.state_dict(rank0_only)["weights"]  # type: ignore[return-value]

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore from :meth:`state_dict`; sharded shadows take their local slice of the full tensor."""
        self.decay = float(state["decay"])  # type: ignore[arg-type]
        self.num_updates = int(state["num_updates"])  # type: ignore[call-overload]
        weights: dict[str, Tensor] = state["weights"]  # type: ignore[assignment]
        missing = set(self.shadow) - set(weights)
        if missing:
            raise KeyError(f"EMA state is missing {sorted(missing)[:5]}")
        for name, cur in self.shadow.items():
            full = weights[name]
            if hasattr(cur, "device_mesh"):  # DTensor: shard the full value the same way
                from torch.distributed.tensor import distribute_tensor

                full = distribute_tensor(full.to(cur.device_mesh.device_type), cur.device_mesh, cur.placements)
                _local(cur).copy_(_local(full))
            else:
                cur.copy_(full.to(cur.device))
