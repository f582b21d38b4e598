"""FlashVSR weight folders: detection by content, strict loading, version rules, our layout round trip."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from streamvsr.errors import ModelError
from streamvsr.models.flashvsr.config import SIZES, DiTConfig
from streamvsr.models.flashvsr.lq_proj import LQProjector
from streamvsr.models.flashvsr.tcdecoder import TCDecoder
from streamvsr.models.flashvsr.wan_vae import WanVAEDecoder
from streamvsr.pipeline.flashvsr_weights import (
    OFFICIAL_FILES,
    classify_keys,
    infer_dit_config,
    infer_lq_proj_config,
    infer_tcdecoder_config,
    infer_vae_config,
    load_flashvsr_folder,
    official_dit_shapes,
    save_flashvsr,
)

_spec = importlib.util.spec_from_file_location(
    "make_tiny_official", Path(__file__).resolve().parents[1] / "scripts" / "make_tiny_official.py"
)
assert _spec is not None and _spec.loader is not None
mto = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mto)

OFFICIAL = SIZES["official-1.3b"]


def _meta_shapes(fn) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in fn().state_dict().items()}


# ------------------------------------------------------------------------------------------ official sizes
def test_official_dit_key_set_detected_with_right_sizes() -> None:
    from streamvsr.models.flashvsr.dit import WanDiT

    shapes = _meta_shapes(lambda: WanDiT(OFFICIAL.dit))
    assert len(shapes) == 825
    assert sum(math.prod(s) for s in shapes.values()) == 1_418_996_800
    assert shapes == official_dit_shapes(OFFICIAL.dit)  # C's module == the spec's key table
    assert classify_keys(shapes) == "dit"
    cfg = infer_dit_config(shapes, {"text_len": 512})
    assert cfg == OFFICIAL.dit
    assert cfg.head_dim == 128  # default head size without a config.json


def test_official_projector_and_decoders_detected() -> None:
    lq = _meta_shapes(lambda: LQProjector(OFFICIAL.lq_proj))
    assert classify_keys(lq) == "lq_proj"
    assert infer_lq_proj_config(lq, causal=True) == OFFICIAL.lq_proj
    assert infer_lq_proj_config(lq, causal=False).causal is False
    tc = _meta_shapes(lambda: TCDecoder(OFFICIAL.decoder))
    assert classify_keys(tc) == "tcdecoder"
    assert infer_tcdecoder_config(tc) == OFFICIAL.decoder
    vae = _meta_shapes(lambda: WanVAEDecoder(OFFICIAL.vae))
    vae_file = {f"model.{k}": v for k, v in vae.items()}  # classification happens after the prefix is stripped
    assert classify_keys(vae_file) == "unknown"
    assert classify_keys(vae) == "vae"
    assert infer_vae_config(vae) == OFFICIAL.vae
    assert classify_keys({"": (1, 512, 4096)}) == "prompt"


# ------------------------------------------------------------------------------------------ tiny official folder
def _check_loaded(modules: dict, folder: Path) -> None:
    from safetensors.torch import load_file

    dit_file = load_file(str(folder / OFFICIAL_FILES["dit"]))
    sd = modules["dit"].state_dict()
    assert set(sd) == set(dit_file)
    for k in ("patch_embedding.weight", "blocks.1.ffn.2.weight", "head.modulation"):
        torch.testing.assert_close(sd[k], dit_file[k])
    lq_file = torch.load(folder / OFFICIAL_FILES["lq_proj"], weights_only=True)
    for k, v in modules["lq_proj"].state_dict().items():
        torch.testing.assert_close(v, lq_file[k])


@pytest.mark.parametrize("wrap_vae", [False, True])
def test_tiny_official_folder_loads(tmp_path: Path, wrap_vae: bool) -> None:
    folder = mto.write_tiny_official(tmp_path / "w", version="1", wrap_vae=wrap_vae)
    cfg, mods = load_flashvsr_folder(folder)
    assert cfg.version == "1" and cfg.lq_proj.causal is False
    d = cfg.dit
    assert (d.dim, d.num_layers, d.num_heads, d.ffn_dim, d.text_dim, d.text_len, d.freq_dim) == (
        64, 2, 2, 128, 32, 8, 32,
    )  # fmt: skip
    assert cfg.lq_proj == mto.TINY_LQ.__class__(**{**mto.TINY_LQ.__dict__, "causal": False})
    assert cfg.decoder == mto.TINY_TC and cfg.vae == mto.TINY_VAE
    assert isinstance(mods["decoder"], TCDecoder)
    assert mods["context"].shape == (1, 8, 32) and mods["context"].dtype == torch.bfloat16
    _check_loaded(mods, folder)
    # the full decoder, from the wrapped / prefixed VAE file with encoder keys ignored
    _, mods_full = load_flashvsr_folder(folder, decoder="full", dtype=torch.float64)
    vae = mods_full["decoder"]
    assert isinstance(vae, WanVAEDecoder)
    assert vae.conv2.weight.dtype == torch.float64 and mods_full["context"].dtype == torch.float64
    raw = torch.load(folder / OFFICIAL_FILES["vae"], weights_only=True)
    raw = raw.get("model_state", raw)
    torch.testing.assert_close(vae.conv2.weight, raw["model.conv2.weight"].double())
    out = vae.decode(torch.randn(1, 16, 2, 2, 2, dtype=torch.float64))
    assert out.shape == (1, 3, 5, 16, 16)


def test_detection_ignores_file_names(tmp_path: Path) -> None:
    folder = mto.write_tiny_official(tmp_path / "w")
    for i, name in enumerate(OFFICIAL_FILES.values()):
        p = folder / name
        p.rename(folder / f"file{i}{p.suffix}")
    cfg, mods = load_flashvsr_folder(folder, meta=True)
    assert cfg.dit.dim == 64 and cfg.version == "1.1" and cfg.lq_proj.causal is True
    assert mods["dit"].patch_embedding.weight.is_meta
    assert mods["context"].is_meta


def test_version_precedence(tmp_path: Path) -> None:
    folder = mto.write_tiny_official(tmp_path / "w", version="1")
    cfg, _ = load_flashvsr_folder(folder, version="1", meta=True)
    assert cfg.version == "1"
    with pytest.raises(ModelError, match="version"):
        load_flashvsr_folder(folder, version="1.1", meta=True)
    # without a version in config.json: argument, else default 1.1
    (folder / "config.json").write_text(json.dumps({"num_heads": 2}))
    assert load_flashvsr_folder(folder, version="v1", meta=True)[0].lq_proj.causal is False
    cfg, _ = load_flashvsr_folder(folder, meta=True)
    assert cfg.version == "1.1" and cfg.lq_proj.causal is True
    with pytest.raises(ModelError, match="unknown FlashVSR version"):
        load_flashvsr_folder(folder, version="2", meta=True)
    # attention settings can come from config.json
    (folder / "config.json").write_text(json.dumps({"num_heads": 2, "attention": {"local_range": 7}}))
    assert load_flashvsr_folder(folder, meta=True)[0].attention.local_range == 7
    (folder / "config.json").write_text(json.dumps({"num_heads": 2, "attention": {"bogus": 1}}))
    with pytest.raises(ModelError, match="attention"):
        load_flashvsr_folder(folder, meta=True)
    # without config.json the head count defaults to dim/128, which a 64-wide DiT cannot satisfy
    (folder / "config.json").unlink()
    with pytest.raises(ModelError, match="num_heads"):
        load_flashvsr_folder(folder, meta=True)


def test_strict_loading_names_keys(tmp_path: Path) -> None:
    folder = mto.write_tiny_official(tmp_path / "w")
    p = folder / OFFICIAL_FILES["lq_proj"]
    sd = torch.load(p, weights_only=True)
    sd["extra.weight"] = torch.zeros(2)
    del sd["norm2.gamma"]
    torch.save(sd, p)
    with pytest.raises(ModelError) as e:
        load_flashvsr_folder(folder)
    msg = str(e.value)
    assert "norm2.gamma" in msg and "extra.weight" in msg and "1 missing" in msg and "1 unexpected" in msg
    assert "\n" not in msg


def test_missing_parts_raise(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_flashvsr_folder(tmp_path / "nope")
    folder = mto.write_tiny_official(tmp_path / "w")
    (folder / OFFICIAL_FILES["prompt"]).unlink()
    with pytest.raises(ModelError, match="posi_prompt"):
        load_flashvsr_folder(folder, meta=True)
    folder2 = mto.write_tiny_official(tmp_path / "w2")
    (folder2 / OFFICIAL_FILES["tcdecoder"]).unlink()
    assert isinstance(load_flashvsr_folder(folder2, meta=True)[1]["decoder"], WanVAEDecoder)
    with pytest.raises(ModelError, match="TCDecoder"):
        load_flashvsr_folder(folder2, decoder="tiny", meta=True)
    (folder2 / OFFICIAL_FILES["dit"]).unlink()
    with pytest.raises(ModelError, match="not a FlashVSR folder"):
        load_flashvsr_folder(folder2)
    (folder / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="junk.ckpt"):
        load_flashvsr_folder(folder)


def test_duplicate_kind_is_ambiguous(tmp_path: Path) -> None:
    folder = mto.write_tiny_official(tmp_path / "w")
    sd = torch.load(folder / OFFICIAL_FILES["lq_proj"], weights_only=True)
    save_file(sd, str(folder / "copy.safetensors"))
    with pytest.raises(ModelError, match="several lq_proj"):
        load_flashvsr_folder(folder, meta=True)


# ------------------------------------------------------------------------------------------ our layout
def test_save_and_load_our_layout_with_shards(tmp_path: Path) -> None:
    cfg = SIZES["tiny"]
    torch.manual_seed(0)
    from streamvsr.models.flashvsr.dit import WanDiT

    mods = {
        "dit": WanDiT(cfg.dit),
        "lq_proj": LQProjector(cfg.lq_proj),
        "decoder": TCDecoder(cfg.decoder),
        "context": None,
    }
    limit = 64 * 1024  # force shards and split tensors (conv1 of the projector is > 64 KiB)
    assert any(v.numel() * 4 > limit for v in mods["lq_proj"].state_dict().values())
    written = save_flashvsr(tmp_path / "ours", cfg, mods, max_shard_bytes=limit)
    assert all(p.stat().st_size <= limit for p in written)
    names = {p.name for p in written}
    assert "config.json" in names and any(n.startswith("dit-00001-of-") for n in names)
    loaded_cfg, loaded = load_flashvsr_folder(tmp_path / "ours")
    assert loaded_cfg.dit == cfg.dit and loaded_cfg.lq_proj == cfg.lq_proj and loaded_cfg.decoder == cfg.decoder
    assert loaded_cfg.vae is None  # only the TCDecoder was saved
    assert loaded["context"] is None
    for name in ("dit", "lq_proj", "decoder"):
        a, b = mods[name].state_dict(), loaded[name].state_dict()
        assert set(a) == set(b)
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    # saving again with one file per module removes the old shards
    save_flashvsr(tmp_path / "ours", cfg, mods)
    assert not list((tmp_path / "ours").glob("*-of-*.safetensors"))
    assert load_flashvsr_folder(tmp_path / "ours", meta=True)[0].dit == cfg.dit


def test_official_folder_round_trips_through_our_layout(tmp_path: Path) -> None:
    folder = mto.write_tiny_official(tmp_path / "w", version="1")
    cfg, mods = load_flashvsr_folder(folder, decoder="full")
    save_flashvsr(tmp_path / "ours", cfg, mods)
    cfg2, mods2 = load_flashvsr_folder(tmp_path / "ours")
    assert cfg2.dit == cfg.dit and cfg2.version == "1" and cfg2.decoder is None and cfg2.vae == cfg.vae
    torch.testing.assert_close(mods2["context"], mods["context"], rtol=0, atol=0)
    assert isinstance(mods2["decoder"], WanVAEDecoder)
    with pytest.raises(ModelError, match="version"):
        load_flashvsr_folder(tmp_path / "ours", version="1.1")


def test_infer_dit_learned_context() -> None:
    cfg = DiTConfig(dim=64, num_layers=1, num_heads=2, ffn_dim=96, text_len=16, freq_dim=32, learned_context=True)
    shapes = official_dit_shapes(cfg)
    assert "context" in shapes and not any(k.startswith("text_embedding") for k in shapes)
    got = infer_dit_config(shapes, {"num_heads": 2})
    assert got.learned_context and got.text_len == 16 and got.ffn_dim == 96 and got.num_layers == 1


def test_bf16_copy_halves_the_bytes_and_loads_the_rounded_weights(tmp_path: Path) -> None:
    """scripts/bf16_copy.py: same config, every float weight equal to its bfloat16 rounding."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bf16_copy", Path(__file__).parents[1] / "scripts" / "bf16_copy.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    cfg = SIZES["tiny"]
    torch.manual_seed(0)
    from streamvsr.models.flashvsr.dit import WanDiT

    mods = {"dit": WanDiT(cfg.dit), "lq_proj": LQProjector(cfg.lq_proj), "decoder": TCDecoder(cfg.decoder)}
    full = save_flashvsr(tmp_path / "fp32", cfg, mods)
    half = script.bf16_copy(tmp_path / "fp32", tmp_path / "bf16")
    size = lambda files: sum(p.stat().st_size for p in files if p.suffix == ".safetensors")  # noqa: E731
    assert size(half) < 0.6 * size(full)
    cfg2, loaded = load_flashvsr_folder(tmp_path / "bf16")
    assert cfg2 == load_flashvsr_folder(tmp_path / "fp32")[0]
    for name in ("dit", "lq_proj", "decoder"):
        a, b = mods[name].state_dict(), loaded[name].state_dict()
        assert set(a) == set(b)
        for k in a:
            torch.testing.assert_close(b[k].float(), a[k].to(torch.bfloat16).float(), rtol=0, atol=0)
    with pytest.raises(ValueError, match="differ"):
        script.bf16_copy(tmp_path / "bf16", tmp_path / "bf16")
