"""Smoke test of the FlashVSR benchmark script on CPU with the tiny size."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "flashvsr.py"


def test_bench_smoke(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_flashvsr", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "r.json"
    args = [
        "--size",
        "tiny",
        "--device",
        "cpu",
        "--sizes",
        "128x128",
        "--frames",
        "2",
        "--backends",
        "dense",
        "--quick",
    ]
    results = mod.main([*args, "--json", str(out)])
    assert len(results) == 1
    r = results[0]
    assert r["finite"] and r["fps"] > 0 and r["selected_block_pairs"] > 0 and r["dit_tflop"] > 0
    assert r["chunks"][0]["frames"] == [0, 21]
    data = json.loads(out.read_text())
    assert data["results"][0]["backend"] == "dense"


def test_bench_profile_groups_op_time_by_kind(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_flashvsr", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert [mod.kernel_kind(n) for n in ("flex_attention_0", "nvjet_tst_128x256", "aten::mkldnn_convolution")] == [
        "attention", "gemm", "conv"
    ]  # fmt: skip
    assert mod.kernel_kind("triton_poi_fused_add_mul_0") == "fused (Triton)" and mod.kernel_kind("aten::var") == "other"
    args = ["--size", "tiny", "--device", "cpu", "--sizes", "128x128", "--frames", "2", "--backends", "dense"]
    (r,) = mod.main([*args, "--quick", "--profile", "1"])
    prof = r["profile"]
    assert prof["chunks"] == 1 and prof["total_ms_per_chunk"] > 0
    assert sum(prof["ms_per_chunk"].values()) == pytest.approx(prof["total_ms_per_chunk"])
    assert {"conv", "attention"} <= set(prof["ms_per_chunk"])  # the decoder's convolutions, the DiT's attention
    assert len(prof["top"]) == 15 and all(t["ms_per_chunk"] > 0 for t in prof["top"])


def test_flex_variants_parse_and_label_rows() -> None:
    spec = importlib.util.spec_from_file_location("bench_flashvsr", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    got = mod.parse_flex_variants("default; autotune ;BLOCK_M=128,BLOCK_N=64,USE_TMA=true")
    assert got == [
        ("default", None, None),
        ("autotune", None, "max-autotune-no-cudagraphs"),
        ("BLOCK_M=128,BLOCK_N=64,USE_TMA=true", {"BLOCK_M": 128, "BLOCK_N": 64, "USE_TMA": True}, None),
    ]
    assert mod.parse_flex_variants("") == [("default", None, None)]
    assert mod.parse_flex_variants("BACKEND=FLASH")[0][1] == {"BACKEND": "FLASH"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        mod.parse_flex_variants("BLOCK_M")
    assert mod._label("flex", "compile+dec", "autotune") == "flex+compile+dec[autotune]"
    assert mod._label("flex", "none") == "flex"
    assert mod.kernel_kind("triton_tem_fused_0") == "Triton template"
