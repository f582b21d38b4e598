"""Load and save FlashVSR weight folders.

Two layouts are understood; files are recognised by their keys and shapes, never by their name alone:

* **Official** (HF ``JunhaoZhuang/FlashVSR`` / ``FlashVSR-v1.1``): ``diffusion_pytorch_model_streaming_dmd.safetensors``
  (DiT), ``LQ_proj_in.ckpt``, ``TCDecoder.ckpt``, ``Wan2.1_VAE.pth`` (only the decoder side is used; it may be
  wrapped in ``model_state`` or carry a ``model.`` prefix), ``posi_prompt.pth`` (a (1, 512, 4096) tensor) and an
  optional ``config.json`` with hints the shapes cannot give (``num_heads``, ``version`` "1" or "1.1", ...).
  Sizes are inferred from the tensor shapes.
* **Ours**: ``config.json`` (``FlashVSRConfig.to_dict()``) + ``dit*.safetensors``, ``lq_proj*.safetensors``,
  ``decoder*.safetensors``; a module larger than the shard limit is split into ``NAME-00001-of-0000N.safetensors``
  and a single tensor larger than the limit is flattened and split (keys ``KEY@partI/N``, shape in the
  file metadata). A fixed text context
  is stored in the DiT file under ``posi_prompt``.

Loading is strict: missing or unexpected keys and shape mismatches raise :class:`ModelError`.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from streamvsr.errors import ModelError
from streamvsr.models.flashvsr.config import (
    AttentionConfig,
    DiTConfig,
    FlashVSRConfig,
    LQProjConfig,
    TCDecoderConfig,
    WanVAEDecoderConfig,
)

__all__ = [
    "OFFICIAL_FILES",
    "PROMPT_KEY",
    "classify_keys",
    "infer_dit_config",
    "infer_lq_proj_config",
    "infer_tcdecoder_config",
    "infer_vae_config",
    "load_flashvsr_folder",
    "official_dit_shapes",
    "save_flashvsr",
]

OFFICIAL_FILES = {
    "dit": "diffusion_pytorch_model_streaming_dmd.safetensors",
    "lq_proj": "LQ_proj_in.ckpt",
    "tcdecoder": "TCDecoder.ckpt",
    "vae": "Wan2.1_VAE.pth",
    "prompt": "posi_prompt.pth",
}
PROMPT_KEY = "posi_prompt"  # fixed text context stored inside our dit file
SHARD_BYTES = 16 * 2**20
_WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pth", ".pt", ".bin")
_SHARD_RE = re.compile(r"^(?P<stem>.+)-(?P<i>\d{5})-of-(?P<n>\d{5})\.safetensors$")
_PART_RE = re.compile(r"^(?P<key>.+)@part(?P<i>\d+)/(?P<n>\d+)$")
_VERSIONS = {"1": "1", "1.0": "1", "v1": "1", "1.1": "1.1", "v1.1": "1.1"}

Shapes = Mapping[str, tuple[int, ...]]


# ---------------------------------------------------------------------------------------------- files
@dataclass
class _WeightFile:
    """One logical weight source (a file or a group of shards): key -> shape, and a lazy tensor reader."""

    paths: list[Path]
    shapes: dict[str, tuple[int, ...]]
    read: Callable[[Collection[str] | None], dict[str, torch.Tensor]]  # keys (None: all) -> tensors
    kind: str = "unknown"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.paths[0].name if len(self.paths) == 1 else f"{self.paths[0].name} (+{len(self.paths) - 1} shards)"


def _torch_load(path: Path) -> Any:
    """torch.load with weights_only=True, memory-mapped when the file format allows it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as e:
        if "mmap" not in str(e).lower() and "zip" not in str(e).lower():
            raise ModelError(f"{path.name}: cannot read checkpoint ({str(e).splitlines()[0]})") from None
    except Exception as e:  # pickle with non-tensor objects, corrupt file, ...
        raise ModelError(f"{path.name}: not a plain tensor checkpoint ({str(e).splitlines()[0]})") from None
    try:  # legacy (non-zip) serialisation cannot be memory-mapped
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelError(f"{path.name}: not a plain tensor checkpoint ({str(e).splitlines()[0]})") from None


def _unwrap_state(obj: Any, path: Path) -> dict[str, torch.Tensor] | torch.Tensor:
    """Plain state dict (``model_state`` / ``state_dict`` wrappers removed, ``model.`` prefix stripped) or a tensor."""
    if isinstance(obj, torch.Tensor):
        return obj
    if not isinstance(obj, Mapping):
        raise ModelError(f"{path.name}: expected a state dict or a tensor, got {type(obj).__name__}")
    for wrapper in ("model_state", "state_dict", "model"):
        inner = obj.get(wrapper)
        if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            obj = inner
            break
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if len(tensors) == 1 and next(iter(tensors.values())).ndim == 3 and len(obj) == 1:
        return next(iter(tensors.values()))  # a prompt tensor saved inside a one-entry dict
    if tensors and all(k.startswith("model.") for k in tensors):
        tensors = {k[len("model.") :]: v for k, v in tensors.items()}
    return tensors


def _open_torch_file(path: Path) -> _WeightFile:
    obj = _unwrap_state(_torch_load(path), path)
    if isinstance(obj, torch.Tensor):
        return _WeightFile([path], {"": tuple(obj.shape)}, lambda keys, o=obj: {"": o}, kind="prompt")

    def read(keys: Collection[str] | None, o: dict[str, torch.Tensor] = obj) -> dict[str, torch.Tensor]:
        return dict(o) if keys is None else {k: o[k] for k in keys}

    return _WeightFile([path], {k: tuple(v.shape) for k, v in obj.items()}, read)


def _open_safetensors(paths: list[Path]) -> _WeightFile:
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    owner: dict[str, Path] = {}
    parts: dict[str, dict[int, str]] = {}
    part_n: dict[str, int] = {}
    split_shapes: dict[str, tuple[int, ...]] = {}
    for p in paths:
        try:
            with safe_open(str(p), framework="pt") as f:
                for mk, mv in (f.metadata() or {}).items():
                    if mk.startswith("shape:"):
                        split_shapes[mk[len("shape:") :]] = tuple(int(d) for d in mv.split(",") if d)
                for k in f.keys():  # noqa: SIM118 (safe_open is not a Mapping)
                    shp = tuple(f.get_slice(k).get_shape())
                    owner[k] = p
                    m = _PART_RE.match(k)
                    if m:
                        key, i, n = m["key"], int(m["i"]), int(m["n"])
                        parts.setdefault(key, {})[i] = k
                        part_n[key] = n
                    else:
                        shapes[k] = shp
        except ModelError:
            raise
        except Exception as e:
            raise ModelError(f"{p.name}: cannot read safetensors file ({str(e).splitlines()[0]})") from None
    for key, got in parts.items():
        if sorted(got) != list(range(part_n[key])) or key not in split_shapes:
            raise ModelError(f"{paths[0].name}: split tensor {key!r} is incomplete")
        shapes[key] = split_shapes[key]

    def read(keys: Collection[str] | None) -> dict[str, torch.Tensor]:
        want = list(shapes) if keys is None else list(keys)
        stored = [s for k in want for s in ([parts[k][i] for i in range(part_n[k])] if k in parts else [k])]
        out: dict[str, torch.Tensor] = {}
        by_file: dict[Path, list[str]] = {}
        for k in stored:
            by_file.setdefault(owner[k], []).append(k)
        raw: dict[str, torch.Tensor] = {}
        for p, keys in by_file.items():
            with safe_open(str(p), framework="pt") as f:
                for k in keys:
                    raw[k] = f.get_tensor(k)
        for k in want:
            if k in parts:
                flat = torch.cat([raw.pop(parts[k][i]) for i in range(part_n[k])])
                out[k] = flat.reshape(shapes[k])
            else:
                out[k] = raw.pop(k)
        return out

    return _WeightFile(paths, shapes, read)


def _scan_folder(folder: Path) -> list[_WeightFile]:
    """Open every weight file (grouping ``NAME-0000i-of-0000N.safetensors`` shards) and classify it by content."""
    groups: dict[str, list[Path]] = {}
    singles: list[Path] = []
    for p in sorted(folder.iterdir()):
        if not p.is_file() or not p.name.endswith(_WEIGHT_SUFFIXES):
            continue
        m = _SHARD_RE.match(p.name)
        if m:
            groups.setdefault(f"{m['stem']}/{m['n']}", []).append(p)
        else:
            singles.append(p)
    files: list[_WeightFile] = []
    for key, paths in groups.items():
        n = int(key.rsplit("/", 1)[1])
        if len(paths) != n:
            raise ModelError(f"{folder}: expected {n} shards of {paths[0].name.rsplit('-', 2)[0]}, found {len(paths)}")
        files.append(_open_safetensors(paths))
    for p in singles:
        files.append(_open_safetensors([p]) if p.suffix == ".safetensors" else _open_torch_file(p))
    for f in files:
        if f.kind == "unknown":
            f.kind = classify_keys(f.shapes)
    return files


# ---------------------------------------------------------------------------------------------- detection
def classify_keys(shapes: Shapes) -> str:
    """What a state dict holds, from its keys and shapes: "dit", "lq_proj", "tcdecoder", "vae" or "unknown"."""
    if "" in shapes and len(shapes) == 1:
        return "prompt" if len(shapes[""]) == 3 else "unknown"
    pe = shapes.get("patch_embedding.weight")
    if pe is not None and len(pe) == 5 and any(k.startswith("blocks.0.self_attn.") for k in shapes):
        return "dit"
    c1 = shapes.get("conv1.weight")
    if c1 is not None and len(c1) == 5 and "linear_layers.0.weight" in shapes and "norm1.gamma" in shapes:
        return "lq_proj"
    dc1 = shapes.get("decoder.conv1.weight")
    if dc1 is not None and len(dc1) == 5 and "conv2.weight" in shapes:
        return "vae"
    d1 = shapes.get("decoder.1.weight")
    if d1 is not None and len(d1) == 4 and all(k.startswith("decoder.") for k in shapes):
        return "tcdecoder"
    return "unknown"


def official_dit_shapes(cfg: DiTConfig) -> dict[str, tuple[int, ...]]:
    """Key -> shape of an official-layout (Wan2.1) DiT state dict (spec §2.2) for ``cfg``."""
    d, f = cfg.dim, cfg.ffn_dim
    s: dict[str, tuple[int, ...]] = {
        "patch_embedding.weight": (d, cfg.in_channels, *cfg.patch),
        "patch_embedding.bias": (d,),
    }
    if cfg.learned_context:
        s["context"] = (1, cfg.text_len, d)
    else:
        s.update({
            "text_embedding.0.weight": (d, cfg.text_dim), "text_embedding.0.bias": (d,),
            "text_embedding.2.weight": (d, d), "text_embedding.2.bias": (d,),
        })  # fmt: skip
    s.update({
        "time_embedding.0.weight": (d, cfg.freq_dim), "time_embedding.0.bias": (d,),
        "time_embedding.2.weight": (d, d), "time_embedding.2.bias": (d,),
        "time_projection.1.weight": (6 * d, d), "time_projection.1.bias": (6 * d,),
    })  # fmt: skip
    for b in range(cfg.num_layers):
        p = f"blocks.{b}."
        s[p + "modulation"] = (1, 6, d)
        for att in ("self_attn", "cross_attn"):
            for n in "qkvo":
                s[f"{p}{att}.{n}.weight"] = (d, d)
                s[f"{p}{att}.{n}.bias"] = (d,)
            s[f"{p}{att}.norm_q.weight"] = (d,)
            s[f"{p}{att}.norm_k.weight"] = (d,)
        s[p + "norm3.weight"] = (d,)
        s[p + "norm3.bias"] = (d,)
        s[p + "ffn.0.weight"] = (f, d)
        s[p + "ffn.0.bias"] = (f,)
        s[p + "ffn.2.weight"] = (d, f)
        s[p + "ffn.2.bias"] = (d,)
    out = cfg.out_channels * math.prod(cfg.patch)
    s.update({"head.modulation": (1, 2, d), "head.head.weight": (out, d), "head.head.bias": (out,)})
    return s


def _need(shapes: Shapes, key: str, what: str) -> tuple[int, ...]:
    if key not in shapes:
        raise ModelError(f"{what}: key {key!r} not found")
    return shapes[key]


def infer_dit_config(shapes: Shapes, hints: Mapping[str, Any] | None = None) -> DiTConfig:
    """DiT sizes from an official-layout state dict; ``hints`` supplies num_heads (else head size 128), text_len, ..."""
    hints = dict(hints or {})
    pe = _need(shapes, "patch_embedding.weight", "DiT")
    dim, cin, patch = pe[0], pe[1], tuple(pe[2:])
    layers = 1 + max((int(k.split(".")[1]) for k in shapes if k.startswith("blocks.")), default=-1)
    if layers < 1:
        raise ModelError("DiT: no transformer blocks found")
    ffn = _need(shapes, "blocks.0.ffn.0.weight", "DiT")[0]
    freq = _need(shapes, "time_embedding.0.weight", "DiT")[1]
    out = _need(shapes, "head.head.weight", "DiT")[0] // math.prod(patch)
    learned = "context" in shapes
    kw: dict[str, Any] = {}
    if learned:
        kw["text_len"] = shapes["context"][1]
    else:
        kw["text_dim"] = _need(shapes, "text_embedding.0.weight", "DiT")[1]
    heads = hints.pop("num_heads", None)
    if heads is None:
        if dim % 128:
            raise ModelError(f"DiT dim {dim} is not a multiple of 128: give num_heads in config.json")
        heads = dim // 128
    for k in ("text_len", "eps", "rope_theta"):
        if k in hints and not (k == "text_len" and learned):
            kw[k] = hints[k]
    try:
        return DiTConfig(
            dim=dim, num_layers=layers, num_heads=int(heads), ffn_dim=ffn, in_channels=cin, out_channels=out,
            patch=patch, freq_dim=freq, learned_context=learned, **kw,
        )  # fmt: skip
    except ValueError as e:
        raise ModelError(f"DiT: {e}") from None


def infer_lq_proj_config(shapes: Shapes, causal: bool, in_channels: int = 3) -> LQProjConfig:
    """LQ projector sizes from ``conv1`` / ``conv2`` / ``linear_layers.0`` shapes."""
    c1 = _need(shapes, "conv1.weight", "LQ projector")
    c2 = _need(shapes, "conv2.weight", "LQ projector")
    lin = _need(shapes, "linear_layers.0.weight", "LQ projector")
    r = math.isqrt(c1[1] // in_channels)
    if in_channels * r * r != c1[1]:
        raise ModelError(f"LQ projector: conv1 input channels {c1[1]} are not {in_channels}*r*r")
    return LQProjConfig(
        in_channels=in_channels, unshuffle=r, hidden1=c1[0], hidden2=c2[0], out_dim=lin[0], causal=causal
    )


def infer_tcdecoder_config(shapes: Shapes) -> TCDecoderConfig:
    """TCDecoder widths / time strides from ``decoder.N`` shapes (layer layout of spec §1.11.2)."""
    n_layers = 1 + max(int(k.split(".")[1]) for k in shapes if k.startswith("decoder."))
    stages, rem = divmod(n_layers - 9, 6)
    if rem or stages < 1:
        raise ModelError(f"TCDecoder: unexpected layer count {n_layers}")
    first = _need(shapes, "decoder.1.weight", "TCDecoder")
    ch = [first[0]]
    strides = []
    for i in range(stages):
        grow = _need(shapes, f"decoder.{9 + 6 * i}.conv.weight", "TCDecoder")
        strides.append(grow[0] // ch[i])
        ch.append(_need(shapes, f"decoder.{10 + 6 * i}.weight", "TCDecoder")[0])
    cond = 3 * math.prod(strides) * 4**stages
    cin = first[1]
    cond, lat = (cond, cin - cond) if cin > cond else (0, cin)
    return TCDecoderConfig(channels=tuple(ch), latent_channels=lat, cond_channels=cond, time_strides=tuple(strides))


def infer_vae_config(shapes: Shapes) -> WanVAEDecoderConfig:
    """Wan VAE decoder sizes from ``conv2`` / ``decoder.*`` shapes (assumes dim_mult[0] == 1, as Wan does)."""
    z = _need(shapes, "conv2.weight", "VAE")[0]
    ups = sorted({int(k.split(".")[2]) for k in shapes if k.startswith("decoder.upsamples.")})
    resample = [i for i in ups if f"decoder.upsamples.{i}.resample.1.weight" in shapes]
    if not resample:
        raise ModelError("VAE: no upsampling layers found")
    nrb = resample[0] - 1
    stages = len(resample) + 1
    outs = []
    for s in range(stages):
        last_res = s * (nrb + 2) + nrb  # index of the stage's last ResBlock
        outs.append(_need(shapes, f"decoder.upsamples.{last_res}.residual.6.weight", "VAE")[0])
    dim = outs[-1]
    if any(o % dim for o in outs):
        raise ModelError(f"VAE: stage widths {outs} are not multiples of {dim}")
    mult = tuple(o // dim for o in reversed(outs))
    temporal = tuple(f"decoder.upsamples.{i}.time_conv.weight" in shapes for i in resample)
    return WanVAEDecoderConfig(dim=dim, z_dim=z, dim_mult=mult, num_res_blocks=nrb, temporal_upsample=temporal)


# ---------------------------------------------------------------------------------------------- building
@contextmanager
def _params_on_meta() -> Iterator[None]:
    """Create parameters on the meta device (no init cost); buffers are created normally."""
    orig = nn.Module.register_parameter

    def register(self: nn.Module, name: str, param: nn.Parameter | None) -> None:
        orig(self, name, param)
        p = self._parameters.get(name)
        if p is not None and p.device.type != "meta":
            self._parameters[name] = nn.Parameter(p.to("meta"), requires_grad=p.requires_grad)

    nn.Module.register_parameter = register  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = orig  # type: ignore[method-assign]


def _build_modules(kind: str, cfg: Any) -> nn.Module:
    if kind == "dit":
        from streamvsr.models.flashvsr.dit import WanDiT

        return WanDiT(cfg)
    if kind == "lq_proj":
        from streamvsr.models.flashvsr.lq_proj import LQProjector

        return LQProjector(cfg)
    if kind == "tcdecoder":
        from streamvsr.models.flashvsr.tcdecoder import TCDecoder

        return TCDecoder(cfg)
    if kind == "vae":
        from streamvsr.models.flashvsr.wan_vae import WanVAEDecoder

        return WanVAEDecoder(cfg)
    raise AssertionError(kind)


def _key_error(what: str, missing: list[str], unexpected: list[str], mismatched: list[str]) -> ModelError:
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong-shape", mismatched)):
        if keys:
            shown = ", ".join(keys[:4])
            parts.append(f"{len(keys)} {label} key(s) ({shown}{', ...' if len(keys) > 4 else ''})")
    return ModelError(f"{what}: " + "; ".join(parts))


def _check_keys(what: str, module: nn.Module, shapes: Shapes) -> None:
    want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = sorted(set(want) - set(shapes))
    unexpected = sorted(set(shapes) - set(want))
    mismatched = [f"{k} {shapes[k]} != {want[k]}" for k in sorted(set(want) & set(shapes)) if shapes[k] != want[k]]
    if missing or unexpected or mismatched:
        raise _key_error(what, missing, unexpected, mismatched)


def _target_dtype(sd: Mapping[str, torch.Tensor], dtype: torch.dtype | None) -> torch.dtype | None:
    if dtype is not None:
        return dtype
    kinds = Counter(v.dtype for v in sd.values() if v.is_floating_point())
    return next(iter(kinds)) if len(kinds) == 1 else (torch.float32 if kinds else None)


def _instantiate(
    kind: str, cfg: Any, src: _WeightFile, what: str, device: torch.device, dtype: torch.dtype | None, meta: bool,
    keep: Callable[[str], bool] = lambda k: True,
) -> nn.Module:  # fmt: skip
    """Build a module and load the ``keep``-selected keys of ``src`` strictly (``meta``: check keys/shapes only)."""
    keys = [k for k in src.shapes if keep(k)]
    if meta:
        with torch.device("meta"):
            module = _build_modules(kind, cfg)
        _check_keys(what, module, {k: src.shapes[k] for k in keys})
        return module.to(dtype) if dtype is not None else module
    with _params_on_meta():
        module = _build_modules(kind, cfg)
    _check_keys(what, module, {k: src.shapes[k] for k in keys})
    sd = src.read(keys)
    tdt = _target_dtype(sd, dtype)
    sd = {k: (v.to(device=device, dtype=tdt) if v.is_floating_point() and tdt else v.to(device)) for k, v in sd.items()}
    module.load_state_dict(sd, strict=True, assign=True)
    return module.to(device).eval()


# ---------------------------------------------------------------------------------------------- API
def _not_prompt(key: str) -> bool:
    return key != PROMPT_KEY


def _vae_key(key: str) -> bool:
    """Decoder side of the Wan VAE file (the encoder and ``conv1`` are unused)."""
    return key.startswith(("conv2.", "decoder."))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"{path}: cannot read config ({e})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: config must be a JSON object")
    return data


def _norm_version(v: Any, where: str) -> str:
    s = str(v).strip().lower()
    if s not in _VERSIONS:
        raise ModelError(f"unknown FlashVSR version {v!r} ({where}); use '1' or '1.1'")
    return _VERSIONS[s]


def _pick(files: list[_WeightFile], kind: str, folder: Path) -> _WeightFile | None:
    found = [f for f in files if f.kind == kind]
    if len(found) > 1:
        raise ModelError(f"{folder}: several {kind} weight files: {', '.join(f.name for f in found)}")
    return found[0] if found else None


def load_flashvsr_folder(
    path: str | Path,
    version: str | None = None,
    decoder: str | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    meta: bool = False,
) -> tuple[FlashVSRConfig, dict[str, Any]]:
    """Detect and load a FlashVSR weight folder (official or ours).

    version: "1" or "1.1" for official folders without a version in config.json (default "1.1"); it selects
             the LQ projector semantics (v1 Buffer / v1.1 Causal). A value conflicting with config.json raises.
    decoder: "tiny" (TCDecoder), "full" (Wan VAE) or None (tiny if present, else full).
    dtype:   floating dtype of the loaded weights (None: as stored; float32 where a file mixes dtypes).
    meta:    build the modules on the meta device and only check keys/shapes (reads no tensor data).

    Returns (config, modules) with modules "dit", "lq_proj", "decoder" (a TCDecoder or a WanVAEDecoder) and
    "context" (the fixed text context tensor (1, L, text_dim), or None when the DiT has a learned context).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ModelError(f"weights folder {folder} does not exist")
    if decoder not in (None, "tiny", "full"):
        raise ModelError(f"decoder must be 'tiny' or 'full', got {decoder!r}")
    dev = torch.device(device)
    cfg_path = folder / "config.json"
    cfg_json = _read_json(cfg_path) if cfg_path.is_file() else {}
    files = _scan_folder(folder)
    kinds = ", ".join(f"{f.name}: {f.kind}" for f in files) or "no weight files"

    dit_src = _pick(files, "dit", folder)
    lq_src = _pick(files, "lq_proj", folder)
    tc_src = _pick(files, "tcdecoder", folder)
    vae_src = _pick(files, "vae", folder)
    prompt_src = _pick(files, "prompt", folder)
    if dit_src is None or lq_src is None:
        raise ModelError(f"{folder}: not a FlashVSR folder (needs a DiT and an LQ projector; found {kinds})")

    if "dit" in cfg_json:  # ---- our layout
        try:
            cfg = FlashVSRConfig.from_dict(cfg_json)
        except (TypeError, ValueError, KeyError) as e:
            raise ModelError(f"{cfg_path}: invalid FlashVSR config ({e})") from None
        if version is not None and _VERSIONS.get(str(version).lower(), str(version)) != cfg.version:
            raise ModelError(f"{cfg_path} says version {cfg.version!r} but version {version!r} was requested")
    else:  # ---- official layout: sizes from shapes
        v_json = cfg_json.get("version")
        ver = _norm_version(v_json, str(cfg_path)) if v_json is not None else None
        if version is not None:
            req = _norm_version(version, "requested")
            if ver is not None and req != ver:
                raise ModelError(f"{cfg_path} says version {ver!r} but version {req!r} was requested")
            ver = req
        ver = ver or "1.1"
        hints = dict(cfg_json)
        if prompt_src is not None and "text_len" not in hints:
            hints["text_len"] = prompt_src.shapes[""][1]
        dit_cfg = infer_dit_config(dit_src.shapes, hints)
        att_d = cfg_json.get("attention")
        try:
            att = AttentionConfig(**att_d) if isinstance(att_d, dict) else AttentionConfig()
        except (TypeError, ValueError) as e:
            raise ModelError(f"{cfg_path}: invalid attention settings ({e})") from None
        cfg = FlashVSRConfig(
            dit=dit_cfg,
            attention=att,
            lq_proj=infer_lq_proj_config(lq_src.shapes, causal=(ver == "1.1")),
            decoder=infer_tcdecoder_config(tc_src.shapes) if tc_src is not None else None,
            vae=infer_vae_config(vae_src.shapes) if vae_src is not None else None,
            version=ver,
        )

    # ---- decoder choice (by content)
    if decoder == "tiny" or (decoder is None and tc_src is not None):
        if tc_src is None or cfg.decoder is None:
            raise ModelError(f"{folder}: no TCDecoder weights for the tiny decoder (found {kinds})")
        dec_kind, dec_cfg, dec_src = "tcdecoder", cfg.decoder, tc_src
    else:
        if vae_src is None or cfg.vae is None:
            raise ModelError(f"{folder}: no decoder weights (TCDecoder or Wan VAE; found {kinds})")
        dec_kind, dec_cfg, dec_src = "vae", cfg.vae, vae_src

    # ---- text context
    context: torch.Tensor | None = None
    if not cfg.dit.learned_context:
        if PROMPT_KEY in dit_src.shapes:
            shp = dit_src.shapes[PROMPT_KEY]
        elif prompt_src is not None:
            shp = prompt_src.shapes[""]
        else:
            raise ModelError(f"{folder}: the DiT needs the prompt tensor posi_prompt.pth (1, 512, 4096)")
        if len(shp) != 3 or shp[2] != cfg.dit.text_dim:
            raise ModelError(f"prompt tensor shape {shp} does not fit text_dim {cfg.dit.text_dim}")
        if meta:
            context = torch.empty(shp, device="meta", dtype=dtype or torch.float32)
        else:
            if PROMPT_KEY in dit_src.shapes:
                src = dit_src.read([PROMPT_KEY])[PROMPT_KEY]
            else:
                src = prompt_src.read(None)[""]  # type: ignore[union-attr]
            context = src.to(device=dev, dtype=dtype or src.dtype)

    dec_keep = _vae_key if dec_kind == "vae" else (lambda k: True)
    modules: dict[str, Any] = {
        "dit": _instantiate("dit", cfg.dit, dit_src, f"DiT ({dit_src.name})", dev, dtype, meta, _not_prompt),
        "lq_proj": _instantiate("lq_proj", cfg.lq_proj, lq_src, f"LQ projector ({lq_src.name})", dev, dtype, meta),
        "decoder": _instantiate(dec_kind, dec_cfg, dec_src, f"decoder ({dec_src.name})", dev, dtype, meta, dec_keep),
        "context": context,
    }
    return cfg, modules


def _entry_cost(key: str, v: torch.Tensor) -> int:
    """Upper bound of the bytes one tensor adds to a safetensors file (data + header entry)."""
    return v.numel() * v.element_size() + len(key) + 160


def _shard_state(sd: Mapping[str, torch.Tensor], limit: int) -> list[tuple[dict[str, torch.Tensor], dict[str, str]]]:
    """Greedy split into (tensors, metadata) shards whose files stay within ``limit`` bytes.

    A tensor that alone exceeds the budget is flattened and split into ``KEY@partI/N`` pieces; its shape goes
    into the metadata of each shard holding a piece (``shape:KEY`` = "d0,d1,...").
    """
    budget = limit - 1024  # file header framing and the metadata entries
    items: list[tuple[str, torch.Tensor, str | None]] = []
    for k, v in sd.items():
        v = v.detach().to("cpu").contiguous()
        if _entry_cost(k, v) > budget and v.numel() > 1:
            per = max(1, (budget - len(k) - 400) // v.element_size())
            chunks = torch.split(v.reshape(-1), per)
            items += [(f"{k}@part{i}/{len(chunks)}", c, k) for i, c in enumerate(chunks)]
        else:
            items.append((k, v, None))
    shards: list[tuple[dict[str, torch.Tensor], dict[str, str]]] = [({}, {"format": "pt"})]
    size = 0
    for k, v, orig in items:
        cost = _entry_cost(k, v) + (0 if orig is None else len(orig) + 80)
        if shards[-1][0] and size + cost > budget:
            shards.append(({}, {"format": "pt"}))
            size = 0
        shards[-1][0][k] = v.clone()
        if orig is not None:
            shards[-1][1][f"shape:{orig}"] = ",".join(str(d) for d in sd[orig].shape)
        size += cost
    return shards


def _write_module(folder: Path, stem: str, sd: Mapping[str, torch.Tensor], limit: int) -> list[Path]:
    from safetensors.torch import save_file

    for old in folder.glob(f"{stem}*.safetensors"):
        if old.name == f"{stem}.safetensors" or _SHARD_RE.match(old.name) and old.name.startswith(f"{stem}-"):
            old.unlink()
    shards = _shard_state(sd, limit)
    n = len(shards)
    names = [f"{stem}.safetensors"] if n == 1 else [f"{stem}-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    paths = [folder / name for name in names]
    for p, (tensors, meta) in zip(paths, shards):
        save_file(tensors, str(p), metadata=meta)
    return paths


def save_flashvsr(
    path: str | Path, cfg: FlashVSRConfig, modules: Mapping[str, Any], max_shard_bytes: int = SHARD_BYTES
) -> list[Path]:
    """Write our layout: config.json + dit / lq_proj / decoder safetensors (each file <= ``max_shard_bytes``).

    modules: "dit", "lq_proj", "decoder" (nn.Modules) and optional "context" (fixed text context tensor, stored
    in the DiT file under ``posi_prompt``). Returns the written paths.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("dit", "lq_proj", "decoder"):
        if not isinstance(modules.get(name), nn.Module):
            raise ModelError(f"save_flashvsr: module {name!r} is missing")
    dec = modules["decoder"]
    dec_cfg = getattr(dec, "cfg", None)
    if dec_cfg not in (cfg.decoder, cfg.vae) or dec_cfg is None:
        raise ModelError("save_flashvsr: the decoder module does not match cfg.decoder / cfg.vae")
    # The folder holds one decoder: keep the config truthful about which.
    if isinstance(dec_cfg, WanVAEDecoderConfig):
        cfg = replace(cfg, decoder=None)
    else:
        cfg = replace(cfg, vae=None)
    for name, sub in (("dit", cfg.dit), ("lq_proj", cfg.lq_proj)):
        mcfg = getattr(modules[name], "cfg", sub)
        if mcfg != sub:
            raise ModelError(f"save_flashvsr: the {name} module does not match cfg.{name}")
    dit_sd = dict(modules["dit"].state_dict())
    ctx = modules.get("context")
    if ctx is not None:
        dit_sd[PROMPT_KEY] = ctx
    written = [folder / "config.json"]
    (folder / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    written += _write_module(folder, "dit", dit_sd, max_shard_bytes)
    written += _write_module(folder, "lq_proj", modules["lq_proj"].state_dict(), max_shard_bytes)
    written += _write_module(folder, "decoder", dec.state_dict(), max_shard_bytes)
    return written
