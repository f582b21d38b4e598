"""Smoke test of the FlashVSR benchmark script on CPU with the tiny size."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

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
