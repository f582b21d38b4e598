"""``--parallel fsdp`` (FSDP2) in the FlashVSR DiT recipes: two CPU ranks over gloo (torchrun), micro config.

The reference is the same job under DDP: same data, noise and initial weights on the same two ranks, so the
two differ only in how gradients are reduced (all-reduce vs reduce-scatter) and in float summation order.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from micro_configs import MICRO, MICRO_AE
from PIL import Image

from streamvsr.media.synth import pattern_frame
from streamvsr.models.autoencoder import VideoAutoencoder
from streamvsr.models.flashvsr.tcdecoder import TCDecoder
from streamvsr.recipes import stage1_teacher, stage2_sparse_causal, stage3_dmd, tcdecoder
from streamvsr.train import checkpoint as ckpt
from streamvsr.train.export import export_safetensors, load_exported

TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed")

# Same ranks, data, noise and weights: the runs differ only by float summation order (all-reduce vs
# reduce-scatter of the gradients). Measured on stage 1 (3 steps): identical logged losses, gradient norms
# within 1.5e-7 relative, weights within 4e-9 while one step moves them by up to 6e-3. 1e-5 leaves room for
# other CPUs / BLAS builds; a missing or wrong gradient reduction moves the weights by ~lr = 3e-3.
RTOL = 1e-5


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 13-frame clip (stage 1) and a 25-frame one (stage 3), a random micro autoencoder and TCDecoder export,
    and the micro config."""
    root = tmp_path_factory.mktemp("fsdp")
    for name, frames, px in (("data", 13, 72), ("data3", 25, 136)):
        clip = root / name / "video" / "clip0"
        clip.mkdir(parents=True)
        for i in range(frames):
            Image.fromarray(pattern_frame(i, px, px)).save(clip / f"{i:05d}.png")
    torch.manual_seed(0)
    ae = VideoAutoencoder(MICRO_AE)
    export_safetensors(ae.state_dict(), root / "ae", {"autoencoder": MICRO_AE.to_dict()}, name="ae")
    tc = TCDecoder(MICRO.decoder)
    tc_conf = {"tcdecoder": json.loads(json.dumps(dataclasses.asdict(MICRO.decoder)))}
    export_safetensors(tc.state_dict(), root / "tc", tc_conf, name="tcdecoder")
    cfg_path = root / "micro.json"
    cfg_path.write_text(json.dumps(MICRO.to_dict()))
    return {"root": root, "data": root / "data", "ae": root / "ae", "tc": root / "tc", "cfg": cfg_path,
            "data3": root / "data3"}  # fmt: skip


def _argv(env: dict[str, Path], run: str, *extra: str) -> list[str]:
    return [
        "--run-dir", str(env["root"] / run), "--size", str(env["cfg"]), "--data", str(env["data"]),
        "--ae", str(env["ae"]), "--clip-len", "9", "--crop", "64", "--batch-size", "1", "--workers", "0",
        "--degradation", "bi", "--log-every", "1", "--device", "cpu", "--warmup-steps", "0", "--lr", "3e-3",
        "--ckpt-every", "1", "--keep-ckpts", "5", *extra,
    ]  # fmt: skip


def _torchrun(module: str, argv: list[str]) -> None:
    cmd = [TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", module, *argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]


def _log(run: Path) -> list[dict]:
    return [r for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if "loss" in r]


def _ckpt(run: Path, step: int) -> dict:
    return ckpt.load_checkpoint(run / f"ckpt-{step:09d}.pt")


def _assert_states_close(a: dict, b: dict, rtol: float = RTOL, atol: float = 1e-7) -> None:
    """Two checkpoints hold the same structure (keys, optimizer indices, groups) and close tensors."""
    assert a["step"] == b["step"] and a["samples"] == b["samples"]
    for slot in a["modules"]:
        ma, mb = a["modules"][slot], b["modules"][slot]
        assert list(ma) == list(mb)
        for k in ma:
            torch.testing.assert_close(mb[k], ma[k], rtol=rtol, atol=atol, msg=f"{slot} {k}")
        oa, ob = a["optimizers"][slot], b["optimizers"][slot]
        assert sorted(oa["state"]) == sorted(ob["state"]) == list(range(len(ma)))
        assert [g["params"] for g in oa["param_groups"]] == [g["params"] for g in ob["param_groups"]]
        assert [{k: v for k, v in g.items() if k != "params"} for g in oa["param_groups"]] == [
            {k: v for k, v in g.items() if k != "params"} for g in ob["param_groups"]
        ]
        for i, sa in oa["state"].items():
            for k, v in sa.items():
                torch.testing.assert_close(ob["state"][i][k], v, rtol=rtol, atol=atol, msg=f"{slot} opt {i} {k}")
        ea, eb = a["emas"][slot], b["emas"][slot]
        assert ea["num_updates"] == eb["num_updates"] and list(ea["weights"]) == list(eb["weights"])
        for k, v in ea["weights"].items():
            torch.testing.assert_close(eb["weights"][k], v, rtol=rtol, atol=atol, msg=f"{slot} ema {k}")


@pytest.fixture(scope="module")
def ddp_run(env: dict[str, Path]) -> Path:
    """The reference: 3 DDP steps on two ranks."""
    _torchrun("streamvsr.recipes.stage1_teacher", _argv(env, "ddp", "--max-steps", "3"))
    return env["root"] / "ddp"


@pytest.fixture(scope="module")
def fsdp_run(env: dict[str, Path]) -> Path:
    """2 FSDP2 steps on two ranks, exporting the EMA weights at the end."""
    out = env["root"] / "fsdp-export"
    extra = ("--max-steps", "2", "--parallel", "fsdp", "--tcdecoder", str(env["tc"]), "--export", str(out))
    _torchrun("streamvsr.recipes.stage1_teacher", _argv(env, "fsdp", *extra))
    return env["root"] / "fsdp"


def test_parallel_flag_plumbing() -> None:
    for mod in (stage1_teacher, stage2_sparse_causal, stage3_dmd, tcdecoder):
        p = mod.build_parser()
        base = ["--run-dir", "x", *(["--ae", "y"] if mod is tcdecoder else [])]
        assert p.parse_args(base).parallel == "ddp"  # DDP stays the default
        assert p.parse_args([*base, "--parallel", "fsdp"]).parallel == "fsdp"


@pytest.mark.slow
def test_stage1_fsdp_trains_like_ddp(env: dict[str, Path], ddp_run: Path, fsdp_run: Path) -> None:
    """Same losses and gradient norms as DDP; the checkpoints (full state dicts written by rank 0) have the same
    format and values, and the export holds the EMA weights."""
    ddp, fsdp = _log(ddp_run), _log(fsdp_run)
    assert [r["step"] for r in fsdp] == [1, 2] and [r["samples"] for r in fsdp] == [2, 4]
    np.testing.assert_allclose([r["loss"] for r in fsdp], [r["loss"] for r in ddp[:2]], rtol=RTOL)
    np.testing.assert_allclose([r["grad_norm"] for r in fsdp], [r["grad_norm"] for r in ddp[:2]], rtol=RTOL)
    assert fsdp[1]["loss"] != fsdp[0]["loss"]  # it trains
    for step in (1, 2):
        _assert_states_close(_ckpt(ddp_run, step), _ckpt(fsdp_run, step))
    state = _ckpt(fsdp_run, 2)
    assert len(state["rng"]) == 2
    dit, _ = load_exported(env["root"] / "fsdp-export", name="dit")
    ema = state["emas"]["net"]["weights"]
    for k, v in dit.items():
        torch.testing.assert_close(v.float(), ema[f"dit.{k}"])


@pytest.mark.slow
def test_stage1_fsdp_checkpoint_resumes_under_fsdp(env: dict[str, Path], ddp_run: Path, fsdp_run: Path) -> None:
    """A FSDP2 run stopped after 2 steps and resumed under FSDP2 continues like the uninterrupted DDP run."""
    shutil.copytree(fsdp_run, env["root"] / "fsdp-resume")
    _torchrun("streamvsr.recipes.stage1_teacher", _argv(env, "fsdp-resume", "--max-steps", "1", "--parallel", "fsdp"))
    got = _log(env["root"] / "fsdp-resume")
    assert [r["step"] for r in got] == [1, 2, 3]
    np.testing.assert_allclose(got[2]["loss"], _log(ddp_run)[2]["loss"], rtol=RTOL)
    _assert_states_close(_ckpt(ddp_run, 3), _ckpt(env["root"] / "fsdp-resume", 3))


@pytest.mark.slow
def test_stage1_fsdp_checkpoint_resumes_single_process(env: dict[str, Path], ddp_run: Path, fsdp_run: Path) -> None:
    """The FSDP2 checkpoint resumes in one process with ``--parallel none`` exactly as the DDP checkpoint of the
    same step does (weights, optimizer state by index, EMA all loaded the same way)."""
    for name, src in (("none-from-fsdp", fsdp_run), ("none-from-ddp", ddp_run)):
        run = env["root"] / name
        run.mkdir()
        shutil.copy(src / "ckpt-000000002.pt", run)
        (run / "log.jsonl").write_text((src / "log.jsonl").read_text())
        recs: list[dict] = []
        stage1_teacher.main(_argv(env, name, "--max-steps", "1", "--parallel", "none"), callback=recs.append)
        assert [r["step"] for r in recs if "loss" in r] == [3]
    a, b = _log(env["root"] / "none-from-ddp"), _log(env["root"] / "none-from-fsdp")
    np.testing.assert_allclose(b[-1]["loss"], a[-1]["loss"], rtol=RTOL)
    _assert_states_close(_ckpt(env["root"] / "none-from-ddp", 3), _ckpt(env["root"] / "none-from-fsdp", 3))


@pytest.mark.slow
def test_stage3_fsdp_trains_like_ddp(env: dict[str, Path], ddp_run: Path) -> None:
    """Stage 3 under FSDP2 (generator, fake score and frozen real score sharded): the same losses and the same
    checkpoints (both trainable slots) as under DDP."""
    args = [
        "--run-dir", "", "--size", str(env["cfg"]), "--data", str(env["data3"]), "--clip-len", "25",
        "--crop", "128", "--batch-size", "1", "--workers", "0", "--degradation", "bi", "--log-every", "1",
        "--device", "cpu", "--warmup-steps", "0", "--lr", "3e-3", "--max-steps", "2", "--init", str(ddp_run),
        "--teacher", str(ddp_run), "--tcdecoder", str(env["tc"]), "--lpips-weight", "0",
    ]  # fmt: skip
    logs = {}
    for mode in ("ddp", "fsdp"):
        args[1] = str(env["root"] / f"s3-{mode}")
        _torchrun("streamvsr.recipes.stage3_dmd", [*args, "--parallel", mode])
        logs[mode] = [r for r in map(json.loads, (env["root"] / f"s3-{mode}" / "log.jsonl").read_text().splitlines())
                      if "loss_g" in r]  # fmt: skip
    assert [r["step"] for r in logs["fsdp"]] == [1, 2]
    for key in ("loss_g", "dmd", "mse", "fm_fake", "grad_norm_g", "grad_norm_f"):
        got, want = [r[key] for r in logs["fsdp"]], [r[key] for r in logs["ddp"]]
        np.testing.assert_allclose(got, want, rtol=RTOL, err_msg=key)
    assert logs["fsdp"][1]["mse"] != logs["fsdp"][0]["mse"]
    _assert_states_close(_ckpt(env["root"] / "s3-ddp", 2), _ckpt(env["root"] / "s3-fsdp", 2))
