"""Smoke test of the FlashVSR benchmark script on CPU with the tiny size."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

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
    # the GPU's busy time: overlapping kernels (two streams) count once, gaps not at all
    assert mod.interval_union([(5.0, 9.0), (0.0, 2.0), (1.0, 3.0), (8.0, 10.0)]) == 8.0
    assert mod.interval_union([]) == 0.0
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
    assert mod.parse_flex_variants("pipeline") == [("pipeline", {"pipeline": True}, None)]
    from streamvsr.pipeline.flashvsr import pipeline_flex_options

    assert pipeline_flex_options(torch.device("cpu"), 128) is None  # what 'pipeline' resolves to: Hopper only
    with pytest.raises(ValueError, match="KEY=VALUE"):
        mod.parse_flex_variants("BLOCK_M")
    assert mod._label("flex", "compile+dec", "autotune") == "flex+compile+dec[autotune]"
    assert mod._label("flex", "none") == "flex"
    assert mod.kernel_kind("triton_tem_fused_0") == "Triton template"


def test_fp8_accuracy_bench(tmp_path: Path) -> None:
    """bench/fp8_accuracy.py on a tiny random model: the FP8 copy really differs from the plain one (finite PSNR,
    linears converted), both stream every frame, and the bf16 comparison is there on the CPU."""
    import numpy as np
    from PIL import Image

    from streamvsr.media.synth import pattern_frame

    root = Path(__file__).resolve().parents[1]

    def load(path: Path):  # noqa: ANN202
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    load(root / "scripts" / "make_random_model.py").main([str(tmp_path / "w"), "--size", "tiny", "--dtype", "fp32"])
    bench = load(root / "bench" / "fp8_accuracy.py")
    seq = tmp_path / "data" / "clip"
    seq.mkdir(parents=True)
    for i in range(9):
        Image.fromarray(np.ascontiguousarray(pattern_frame(i, 128, 128))).save(seq / f"{i:05d}.png")
    out = tmp_path / "fp8.json"
    rows = bench.main(["--weights", str(tmp_path / "w"), "--data", str(tmp_path / "data"), "--max-frames", "9",
                       "--device", "cpu", "--json", str(out)])  # fmt: skip
    assert len(rows) == 1 and rows[0]["frames"] == 9 and rows[0]["size"] == [128, 128]
    data = json.loads(out.read_text())
    assert data["meta"]["fp8_linears"] > 0
    for key in ("psnr_fp8_db", "psnr_bf16_db"):
        assert 0 < rows[0][key] < float("inf"), key


def _load(path: Path, name: str):  # noqa: ANN202 - a bench or script module loaded from its file
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_e2e_fp8_bench_smoke_on_cpu(tmp_path: Path) -> None:
    """bench/e2e_fp8.py runs a file end to end per variant and reports a steady rate (CPU: bf16 only)."""
    root = Path(__file__).resolve().parents[1]
    weights = _load(root / "scripts" / "make_tiny_official.py", "make_tiny_official").write_tiny_official(
        tmp_path / "w", seed=0
    )
    mod = _load(root / "bench" / "e2e_fp8.py", "bench_e2e_fp8")
    out = tmp_path / "e2e.json"
    args = ["--weights", str(weights), "--variants", "bf16", "--frames", "20", "--size", "32x48", "--repeats", "2"]
    rows = mod.main([*args, "--steady-from", "9", "--no-compile", "--device", "cpu", "--json", str(out)])
    assert [(r["variant"], r["repeat"], r["frames"]) for r in rows] == [("bf16", 0, 20), ("bf16", 1, 20)]
    assert all(r["steady_fps"] > 0 and r["fps"] > 0 and r["first_output_s"] > 0 for r in rows)
    assert json.loads(out.read_text())["results"] == rows
    assert mod.steady_rate([(0, 0.0), (10, 1.0), (30, 2.0)], 10) == 20.0 and mod.steady_rate([(5, 1.0)], 0) is None
    with pytest.raises(SystemExit):
        mod.main(["--weights", str(weights), "--variants", "int4"])


def test_replay_peak_attributes_the_live_blocks() -> None:
    """The allocator-trace replay finds the peak and what is alive there, by the owner's innermost frame."""
    path = Path(__file__).resolve().parents[1] / "bench" / "gpu_memory.py"
    spec = importlib.util.spec_from_file_location("bench_gpu_memory", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def fr(name: str, line: int) -> list[dict]:
        return [
            {"filename": "/x/torch/nn/functional.py", "line": 1, "name": "conv2d"},
            {"filename": f"/repo/src/streamvsr/models/{name}.py", "line": line, "name": name},
        ]

    gib = 2**30
    events = [
        {"action": "alloc", "addr": 1, "size": 2 * gib, "frames": fr("dit", 10)},
        {"action": "alloc", "addr": 2, "size": 1 * gib, "frames": fr("decoder", 20)},
        {"action": "free_requested", "addr": 1, "size": 2 * gib},  # not back yet: still counted
        {"action": "alloc", "addr": 3, "size": 1 * gib, "frames": fr("decoder", 21)},
        {"action": "free_completed", "addr": 1, "size": 2 * gib},
        {"action": "free_completed", "addr": 99, "size": 1 * gib},  # a block from before the trace
        {"action": "alloc", "addr": 4, "size": 1 * gib, "frames": fr("dit", 11)},
    ]
    rep = mod.replay_peak(events, before=3 * gib)
    assert rep["peak_gib"] == 7.0 and rep["peak_event"] == 3
    owners = rep["at_peak_by_owner_gib"]
    assert owners == {
        "streamvsr/models/dit.py:10 dit": 2.0,
        "streamvsr/models/decoder.py:20 decoder": 1.0,
        "streamvsr/models/decoder.py:21 decoder": 1.0,
    }
    assert rep["at_peak_before_trace_gib"] == 3.0
    assert set(rep["at_peak_by_frame_gib"]) == {"torch/nn/functional.py:1 conv2d"}


def test_cli_run_progress_rate_reads_the_cli_json_lines() -> None:
    path = Path(__file__).resolve().parents[1] / "bench" / "cli_run.py"
    spec = importlib.util.spec_from_file_location("bench_cli_run", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = [{"frames": 0, "fps": 0.0, "elapsed": 5.0}]
    rows += [{"frames": f, "fps": 1.0, "elapsed": 6.0 + f / 50} for f in range(8, 1001, 8)]  # 50 fps after 6 s
    lines = ["a warning on stdout", *(json.dumps(r) for r in rows), "[]"]
    s = mod.progress_rate(lines, after=400)
    assert s["frames"] == 1000 and s["first_s"] == pytest.approx(6.16)
    assert s["rate"] == pytest.approx(50.0)
    with pytest.raises(ValueError):
        mod.progress_rate(["no json here"], after=1)


def test_multigpu_batch_log_gives_steady_rate_and_fixed_cost(tmp_path: Path) -> None:
    path = Path(__file__).resolve().parents[1] / "bench" / "multigpu.py"
    spec = importlib.util.spec_from_file_location("bench_multigpu", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    log = tmp_path / "batch2.log"
    log.write_text(
        "[rank 0] v0.mp4 -> v0.mp4: 600 frames in 19.0s (first frame after 7.0s)\n"
        "[rank 1] v1.mp4 -> v1.mp4: 600 frames in 20.0s (first frame after 7.5s)\n"
        "noise\n[rank 0] v2.mp4 -> v2.mp4: 600 frames in 10.0s\n"
        "[rank 1] v3.mp4 -> v3.mp4: 600 frames in 12.0s (first frame after 0.6s)\n"
    )
    assert mod.batch_processing_s(log) == pytest.approx(32.0)
    s = mod.batch_steady(log)
    assert s["steady_fps"] == pytest.approx(60.0 + 50.0)  # later videos, summed over the ranks
    assert s["first_extra_s"] == pytest.approx(9.0)  # rank 0: 19 - 10; rank 1: 20 - 12
    log.write_text("[rank 0] v0.mp4 -> v0.mp4: 600 frames in 19.0s\n")
    assert mod.batch_steady(log) == {"steady_fps": None, "first_extra_s": None}
    assert mod.parse_env(["TORCHINDUCTOR_COMPILE_THREADS=1", "X=a=b"]) == {
        "TORCHINDUCTOR_COMPILE_THREADS": "1",
        "X": "a=b",
    }
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        mod.parse_env(["JUSTANAME"])
    with pytest.raises(SystemExit, match="--reuse: no earlier test videos"):  # before any run starts
        mod.main(["--reuse", "--work", str(tmp_path / "none"), "--model", "bicubic", "--videos", "1"])


def test_block_counter_counts_the_lists_path_once() -> None:
    spec = importlib.util.spec_from_file_location("bench_flashvsr", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from streamvsr.models.flashvsr import attention as A
    from streamvsr.models.flashvsr.config import AttentionConfig

    plan = A.make_plan(4, 8, AttentionConfig(window=(1, 2, 2), local_range=3), torch.device("cpu"))
    qm, km = torch.randn(1, 2, plan.nb, 8), torch.randn(1, 2, 3 * plan.nb, 8)
    vis = torch.tensor([[True, False, True]])
    want = int(A.select_blocks(qm, km, plan, vis).sum())
    with mod._BlockCounter() as c:
        A.select_block_lists(qm, km, plan, vis)  # on the CPU it builds the lists from select_blocks' mask
        A.select_blocks(qm, km, plan, vis)
    assert c.value() == 2 * want > 0
    assert A.select_blocks is c.orig and A.select_block_lists is c.orig_lists


def test_attention_bench_captures_a_steady_model_call() -> None:
    """``bench/attention_kernels.py --layout captured``: the inputs of one steady self-attention call of the model,
    with the block lists the model selected for it (here the tiny size on the CPU)."""
    import sys

    sys.path.insert(0, str(BENCH.parent))
    try:
        spec = importlib.util.spec_from_file_location("bench_attention_kernels", BENCH.parent / "attention_kernels.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(BENCH.parent))
    torch.manual_seed(0)
    c = mod.capture_model_call((128, 256), torch.device("cpu"), size="tiny", layer=1, frames=25)
    q, k, v, num, idx, block = c["q"], c["k"], c["v"], c["num"], c["idx"], c["block"]
    assert q.dim() == 4 and k.shape == v.shape and k.shape[2] > q.shape[2]  # cached windows and the new one
    assert num.shape == q.shape[:2] + (q.shape[2] // block,) and idx.shape[-1] == k.shape[2] // block
    assert int(num.min()) > 0 and int(num.max()) <= idx.shape[-1]
    n = idx.shape[-1]
    assert torch.equal(idx.sort(-1).values, torch.arange(n, dtype=idx.dtype).expand(idx.shape))  # every key block once
    assert int(num.float().mean()) < n  # a sparse selection, not every block
