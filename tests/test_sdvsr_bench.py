"""bench/streamdiffvsr.py: the --tiny --device cpu smoke mode runs and writes its JSON."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")

BENCH = Path(__file__).resolve().parents[1] / "bench" / "streamdiffvsr.py"


def test_tiny_cpu_smoke(tmp_path, capsys) -> None:
    spec = importlib.util.spec_from_file_location("bench_streamdiffvsr", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path / "b.json"
        rows = mod.main(["--tiny", "--device", "cpu", "--frames", "2", "--warmup", "2", "--flows", "raft:1.0,dis:lr",
                         "--profile", "--json", str(out)])  # fmt: skip
    finally:
        torch.set_num_threads(n)
    data = json.loads(out.read_text())
    assert len(rows) == len(data["rows"]) == 2
    for r in data["rows"]:
        assert r["out"] == [64, 96] and r["s_per_frame"] > 0 and r["finite"]
        assert set(r["stages_s"]) == {"flow", "condition", "denoise", "decode"}
    assert "s/frame" in capsys.readouterr().out
    frames = mod.moving_texture(3, 16, 24, torch.device("cpu"))
    assert frames.shape == (3, 3, 16, 24)
    torch.testing.assert_close(frames[1, :, 1:, 2:], frames[0, :, :-1, :-2])  # moves (2, 1) px per frame
