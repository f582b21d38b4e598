"""Export inference weights: ``<name>.safetensors`` (sharded when large) + ``config.json``.

Every file stays within ``max_file_bytes`` (16 MiB by default). Small models give one ``<name>.safetensors``;
larger ones give ``<name>-00001-of-0000N.safetensors`` files plus ``<name>.safetensors.index.json`` (the
usual ``weight_map``), and a single tensor larger than a file is stored flattened in parts listed under
``"split"`` in the index. Each safetensors file also carries the config as metadata (``"config"``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from streamvsr.errors import ModelError
from streamvsr.train.checkpoint import atomic_write_bytes

__all__ = ["MAX_FILE_BYTES", "export_safetensors", "load_autoencoder", "load_exported"]

MAX_FILE_BYTES = 16 * 2**20
_HEADER_PER_TENSOR = 256  # generous bound on one tensor's entry in the safetensors JSON header


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def export_safetensors(
    state_dict: dict[str, torch.Tensor],
    out_dir: str | Path,
    config: dict[str, Any],
    name: str = "model",
    max_file_bytes: int = MAX_FILE_BYTES,
    dtype: torch.dtype | None = None,
) -> list[Path]:
    """Write ``state_dict`` (optionally cast to ``dtype``) and ``config.json`` into ``out_dir``.

    Returns the files written. Files are written atomically; stale shards of an earlier export with the
    same ``name`` are removed.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"config": json.dumps(config, sort_keys=True), "format": "pt"}
    meta_bytes = len(json.dumps(meta)) + 64
    budget = max_file_bytes - meta_bytes - 8
    if budget <= _HEADER_PER_TENSOR:
        raise ValueError(f"max_file_bytes {max_file_bytes} is too small")

    tensors: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        t = value.detach().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        tensors[key] = t.contiguous()

    # Split tensors that cannot fit one file into flat parts.
    split: dict[str, dict[str, Any]] = {}
    items: list[tuple[str, torch.Tensor]] = []
    for key, t in tensors.items():
        size = _nbytes(t) + _HEADER_PER_TENSOR
        if size <= budget:
            items.append((key, t))
            continue
        per_part = max((budget - _HEADER_PER_TENSOR) // t.element_size(), 1)
        n_parts = math.ceil(t.numel() / per_part)
        parts = t.reshape(-1).split(per_part)
        names = [f"{key}.__part{i:04d}" for i in range(n_parts)]
        split[key] = {"shape": list(t.shape), "parts": names}
        items.extend((n, p.clone()) for n, p in zip(names, parts))

    # Greedy packing in key order.
    shards: list[dict[str, torch.Tensor]] = [{}]
    used = 0
    for key, t in items:
        size = _nbytes(t) + _HEADER_PER_TENSOR
        if shards[-1] and used + size > budget:
            shards.append({})
            used = 0
        shards[-1][key] = t
        used += size

    for stale in out.glob(f"{name}-*-of-*.safetensors"):
        stale.unlink()
    index_path = out / f"{name}.safetensors.index.json"
    written: list[Path] = []
    if len(shards) == 1 and not split:
        path = out / f"{name}.safetensors"
        atomic_write_bytes(path, save(shards[0], metadata=meta))
        written.append(path)
        if index_path.exists():
            index_path.unlink()
    else:
        single = out / f"{name}.safetensors"
        if single.exists():
            single.unlink()
        weight_map: dict[str, str] = {}
        n = len(shards)
        for i, shard in enumerate(shards):
            path = out / f"{name}-{i + 1:05d}-of-{n:05d}.safetensors"
            atomic_write_bytes(path, save(shard, metadata=meta))
            written.append(path)
            weight_map.update(dict.fromkeys(shard, path.name))
        index = {
            "metadata": {"total_size": sum(_nbytes(t) for _, t in items)},
            "weight_map": weight_map,
            "split": split,
        }
        atomic_write_bytes(index_path, json.dumps(index, indent=1, sort_keys=True).encode())
        written.append(index_path)
    cfg_path = out / "config.json"
    atomic_write_bytes(cfg_path, json.dumps(config, indent=2, sort_keys=True).encode())
    written.append(cfg_path)
    for path in written:
        if path.stat().st_size > max_file_bytes:  # the header bound above keeps this from happening
            raise RuntimeError(f"{path.name} is {path.stat().st_size} bytes, over {max_file_bytes}")
    return written


def load_exported(
    out_dir: str | Path, name: str = "model", device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read back what :func:`export_safetensors` wrote: (state_dict, config)."""
    out = Path(out_dir)
    cfg_path = out / "config.json"
    if not cfg_path.is_file():
        raise ModelError(f"no config.json in {out}")
    config = json.loads(cfg_path.read_text())
    single = out / f"{name}.safetensors"
    index_path = out / f"{name}.safetensors.index.json"
    if single.is_file():
        return load_file(single, device=str(device)), config
    if not index_path.is_file():
        raise ModelError(f"no {single.name} or {index_path.name} in {out}")
    index = json.loads(index_path.read_text())
    flat: dict[str, torch.Tensor] = {}
    for fname in sorted(set(index["weight_map"].values())):
        flat.update(load_file(out / fname, device=str(device)))
    state: dict[str, torch.Tensor] = {}
    part_names = set()
    for key, info in index.get("split", {}).items():
        parts = [flat[p] for p in info["parts"]]
        part_names.update(info["parts"])
        state[key] = torch.cat(parts).reshape(info["shape"])
    state.update({k: v for k, v in flat.items() if k not in part_names})
    return state, config


def load_autoencoder(out_dir: str | Path, device: str | torch.device = "cpu", name: str = "ae") -> Any:
    """Build a :class:`~streamvsr.models.autoencoder.VideoAutoencoder` from an export directory."""
    from streamvsr.models.autoencoder import AutoencoderConfig, VideoAutoencoder

    state, config = load_exported(out_dir, name=name, device=device)
    try:
        cfg = AutoencoderConfig.from_dict(config["autoencoder"])
    except (KeyError, ValueError, TypeError) as e:
        raise ModelError(f"{out_dir}/config.json is not an autoencoder config: {e}") from None
    model = VideoAutoencoder(cfg)
    try:
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    except RuntimeError as e:
        raise ModelError(f"weights in {out_dir} do not match its config: {str(e).splitlines()[0]}") from None
    return model.to(device).eval()
