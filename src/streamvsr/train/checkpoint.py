"""Atomic, resumable training checkpoints.

A run directory holds ``ckpt-<step>.pt`` files and a ``latest`` file naming the newest one. Each checkpoint is
written to a temporary file in the same directory and moved into place with ``os.replace``, so a crash never
leaves a partial checkpoint under a real name. Files load with ``torch.load(weights_only=True)``: all state
is tensors, numbers, strings, lists and dicts (RNG states are converted).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from streamvsr.train.distributed import is_fsdp, unwrap

__all__ = [
    "atomic_write_bytes",
    "find_latest",
    "get_rng_state",
    "list_checkpoints",
    "load_checkpoint",
    "model_state_dict",
    "optimizer_state_dict",
    "save_checkpoint",
    "set_model_state_dict",
    "set_optimizer_state_dict",
    "set_rng_state",
]

_CKPT_RE = re.compile(r"^ckpt-(\d+)\.pt$")
LATEST = "latest"


# --- atomic files ----------------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be opened
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write(path: Path, write: Any) -> None:
    """Call ``write(file_object)`` on a temp file next to ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; outputs should be readable like any other file
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    _atomic_write(Path(path), lambda f: f.write(data))


# --- RNG -------------------------------------------------------------------------------------------------


def get_rng_state() -> dict[str, Any]:
    """This process's python, numpy, torch and CUDA RNG states, as weights_only-loadable values."""
    py = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {
            "kind": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`get_rng_state`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda)


# --- model / optimizer state (plain, DDP or FSDP2) -------------------------------------------------------


def model_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Full (unsharded) state dict on CPU. Collective under FSDP2: call it on every rank."""
    model = unwrap(model)
    if is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def set_model_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a full state dict (strict). Under FSDP2 every rank passes the same full dict."""
    model = unwrap(model)
    if is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions
        from torch.distributed.checkpoint.state_dict import set_model_state_dict as _set

        _set(model, state, options=StateDictOptions(full_state_dict=True, strict=True))
        return
    model.load_state_dict(state, strict=True)


def _param_fqns(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The names of the optimizer's parameters in ``optimizer.state_dict()`` index order."""
    names = {id(p): n for n, p in model.named_parameters()}
    try:
        return [names[id(p)] for g in optimizer.param_groups for p in g["params"]]
    except KeyError:
        raise ValueError("the optimizer holds a parameter that is not in the model") from None


def _is_fqn_keyed(state: dict[str, Any]) -> bool:
    groups = state.get("param_groups") or []
    return any(isinstance(k, str) for g in groups for k in g.get("params", [])) or any(
        isinstance(k, str) for k in state.get("state", {})
    )


def _fqn_to_indexed(state: dict[str, Any], fqns: list[str]) -> dict[str, Any]:
    """A name-keyed optimizer state (``torch.distributed.checkpoint``) in ``optimizer.state_dict()``'s format."""
    index = {n: i for i, n in enumerate(fqns)}
    groups = [{**g, "params": [index[n] for n in g["params"]]} for g in state["param_groups"]]
    return {"state": {index[n]: v for n, v in state["state"].items()}, "param_groups": groups}


def _indexed_to_fqn(state: dict[str, Any], fqns: list[str]) -> dict[str, Any]:
    """Inverse of :func:`_fqn_to_indexed`."""
    groups = [{**g, "params": [fqns[i] for i in g["params"]]} for g in state["param_groups"]]
    return {"state": {fqns[int(i)]: v for i, v in state["state"].items()}, "param_groups": groups}


def optimizer_state_dict(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Full optimizer state in ``optimizer.state_dict()``'s format (states keyed by parameter index), whatever
    the parallel mode, so a checkpoint resumes under another mode or world size.

    Collective under FSDP2: call it on every rank; only rank 0 gets the state (others get ``{}``).
    """
    model = unwrap(model)
    if is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        full = get_optimizer_state_dict(
            model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
        return _fqn_to_indexed(full, _param_fqns(model, optimizer)) if full else {}
    return optimizer.state_dict()


def set_optimizer_state_dict(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Inverse of :func:`optimizer_state_dict` (every rank passes the same full state). Also takes the
    name-keyed format of ``torch.distributed.checkpoint``."""
    model = unwrap(model)
    if is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict as _set

        if not _is_fqn_keyed(state):
            state = _indexed_to_fqn(state, _param_fqns(model, optimizer))
        _set(model, optimizer, state, options=StateDictOptions(full_state_dict=True))
        # the hyperparameters exactly as stored (the loader above turns tuples such as ``betas`` into lists)
        for group, stored in zip(optimizer.param_groups, state["param_groups"]):
            group.update({k: v for k, v in stored.items() if k != "params"})
        return
    if _is_fqn_keyed(state):
        state = _fqn_to_indexed(state, _param_fqns(model, optimizer))
    optimizer.load_state_dict(state)


# --- checkpoint files -----------------------------------------------------------------------------------


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints in ``run_dir``, oldest first."""
    run = Path(run_dir)
    if not run.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run.iterdir() if (m := _CKPT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def find_latest(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint: the one ``latest`` names if it exists, else the highest step."""
    run = Path(run_dir)
    pointer = run / LATEST
    if pointer.is_file():
        name = pointer.read_text().strip()
        if _CKPT_RE.match(name) and (run / name).is_file():
            return run / name
    ckpts = list_checkpoints(run)
    return ckpts[-1] if ckpts else None


def save_checkpoint(run_dir: str | Path, state: dict[str, Any], step: int, keep: int = 2) -> Path:
    """Write ``state`` as ``ckpt-<step>.pt`` atomically, point ``latest`` at it, keep the newest ``keep``."""
    run = Path(run_dir)
    path = run / f"ckpt-{step:09d}.pt"
    _atomic_write(path, lambda f: torch.save(state, f))
    atomic_write_bytes(run / LATEST, (path.name + "\n").encode())
    if keep > 0:
        for old in list_checkpoints(run)[:-keep]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (safe ``weights_only`` unpickling)."""
    return torch.load(path, map_location=map_location, weights_only=True)
