"""Training infrastructure: EMA, checkpoints, RNG, LR, losses, logging, export, and the stage-0 recipe."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from streamvsr.errors import DataError, ModelError
from streamvsr.recipes import stage0_autoencoder as stage0
from streamvsr.train import checkpoint as ckpt
from streamvsr.train import losses
from streamvsr.train.distributed import all_reduce_mean, init_distributed, unwrap, wrap_model
from streamvsr.train.ema import EMA
from streamvsr.train.export import export_safetensors, load_autoencoder, load_exported
from streamvsr.train.logger import JSONLLogger
from streamvsr.train.optim import lr_at, make_adamw

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- EMA -------------------------------------------------------------------------------------------------


def test_ema_update_matches_formula_and_round_trips() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    ema = EMA(model, decay=0.9, warmup=False)
    w0 = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    torch.testing.assert_close(ema.shadow["weight"], 0.9 * w0 + 0.1 * (w0 + 1.0))
    state = ema.state_dict()
    other = EMA(nn.Linear(3, 2), decay=0.5)
    other.load_state_dict(state)
    assert other.decay == 0.9 and other.num_updates == 1
    torch.testing.assert_close(other.shadow["weight"], ema.shadow["weight"])
    before = model.weight.detach().clone()
    with ema.swapped_into(model):
        torch.testing.assert_close(model.weight, ema.shadow["weight"])
    torch.testing.assert_close(model.weight, before)


def test_ema_warmup_decay() -> None:
    ema = EMA(nn.Linear(1, 1), decay=0.999)
    assert ema.current_decay() == pytest.approx(0.1)
    ema.num_updates = 10**6
    assert ema.current_decay() == 0.999


# --- checkpoints and RNG ---------------------------------------------------------------------------------


def test_checkpoint_round_trip_latest_and_keep(tmp_path: Path) -> None:
    assert ckpt.find_latest(tmp_path) is None
    for step in (5, 10, 15):
        ckpt.save_checkpoint(tmp_path, {"step": step, "w": torch.full((2,), float(step))}, step, keep=2)
    names = [p.name for p in ckpt.list_checkpoints(tmp_path)]
    assert names == ["ckpt-000000010.pt", "ckpt-000000015.pt"]
    latest = ckpt.find_latest(tmp_path)
    assert latest is not None and latest.name == "ckpt-000000015.pt"
    state = ckpt.load_checkpoint(latest)
    assert state["step"] == 15 and torch.equal(state["w"], torch.full((2,), 15.0))
    (tmp_path / "latest").unlink()  # discovery also works without the pointer file
    assert ckpt.find_latest(tmp_path).name == "ckpt-000000015.pt"


def test_checkpoint_failure_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt.save_checkpoint(tmp_path, {"step": 1}, 1)
    before = sorted(p.name for p in tmp_path.iterdir())

    def broken_save(obj: object, f: object) -> None:
        f.write(b"partial bytes")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(tmp_path, {"step": 2}, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert ckpt.find_latest(tmp_path).name == "ckpt-000000001.pt"


def test_rng_state_round_trip(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    state = ckpt.get_rng_state()
    ckpt.save_checkpoint(tmp_path, {"rng": state}, 0)
    first = (random.random(), np.random.rand(), torch.rand(3))
    ckpt.set_rng_state(ckpt.load_checkpoint(ckpt.find_latest(tmp_path))["rng"])
    second = (random.random(), np.random.rand(), torch.rand(3))
    assert first[0] == second[0] and first[1] == second[1] and torch.equal(first[2], second[2])


# --- distributed (single process) and optimiser ----------------------------------------------------------


def test_single_process_distributed_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    info = init_distributed("cpu")
    assert info.rank == 0 and info.world_size == 1 and info.is_main and not info.is_distributed
    model = nn.Linear(2, 2)
    assert wrap_model(model, info, "ddp") is model and unwrap(model) is model
    assert all_reduce_mean({"a": 1.5}) == {"a": 1.5}
    with pytest.raises(ValueError):
        wrap_model(model, info, "zero3")


def test_lr_schedule() -> None:
    assert lr_at(0, 1.0, warmup_steps=4) == pytest.approx(0.25)
    assert lr_at(3, 1.0, warmup_steps=4) == pytest.approx(1.0)
    assert lr_at(100, 1.0, warmup_steps=4) == 1.0
    assert lr_at(4, 1.0, 4, total_steps=104, schedule="cosine") == pytest.approx(1.0)
    assert lr_at(104, 1.0, 4, total_steps=104, schedule="cosine", min_ratio=0.1) == pytest.approx(0.1)
    assert lr_at(54, 1.0, 4, total_steps=104, schedule="cosine", min_ratio=0.0) == pytest.approx(0.5)


def test_adamw_groups() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4))
    opt = make_adamw(model, lr=1e-3, weight_decay=0.05)
    decays = {len(g["params"]): g["weight_decay"] for g in opt.param_groups}
    assert decays == {1: 0.05, 3: 0.0}  # conv weight decays; conv bias, norm weight and bias don't


# --- losses ------------------------------------------------------------------------------------------------


def test_pixel_losses_and_psnr() -> None:
    x = torch.zeros(2, 3, 4, 4)
    y = torch.full_like(x, 0.5)
    assert losses.l1(x, y) == pytest.approx(0.5)
    assert losses.mse(x, y) == pytest.approx(0.25)
    assert losses.charbonnier(x, y, eps=1e-3) == pytest.approx(math.sqrt(0.25 + 1e-6))
    assert losses.psnr(x, y) == pytest.approx(10 * math.log10(4 / 0.25))
    v = torch.randn(2, 3, 5, 4, 4)
    assert losses.video_to_images(v).shape == (10, 3, 4, 4)
    assert torch.equal(losses.video_to_images(v)[6], v[1, :, 1])


def test_temporal_difference_penalises_flicker_not_offsets() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.rand(2, 3, 5, 8, 8, generator=g) * 2 - 1
    assert float(losses.temporal_difference(y + 0.3, y)) == pytest.approx(0.0, abs=1e-12)
    flicker = y.clone()
    flicker[:, :, 2] += 0.5  # one frame brighter: changes of +0.5 then -0.5 around it
    assert float(losses.temporal_difference(flicker, y)) == pytest.approx(2 * 0.25 / 4)
    with pytest.raises(ValueError):
        losses.temporal_difference(y[:, :, :1], y[:, :, :1])


def test_detail_energy_counts_the_amount_of_detail_not_its_phase() -> None:
    g = torch.Generator().manual_seed(0)
    flat = torch.zeros(2, 3, 64, 64)
    texture = torch.rand(2, 3, 64, 64, generator=g) * 0.4 - 0.2  # fine random detail
    assert float(losses.detail_energy(texture, texture)) == 0.0
    # texture over a flat target: costs its full amount, far more than its MSE
    drawn = float(losses.detail_energy(texture, flat))
    assert drawn > 0.05 and drawn > 3 * float(losses.mse(texture, flat))
    # the same texture one pixel off: MSE sees a big error, the detail term next to none
    shifted = texture.roll(1, dims=-1)
    assert float(losses.detail_energy(shifted, texture)) < 0.1 * drawn
    assert float(losses.mse(shifted, texture)) > 0.01
    # a smooth ramp (no fine detail; only the border tiles see its slope) costs little; a constant offset nothing
    ramp = torch.linspace(-0.5, 0.5, 64).expand(2, 3, 64, 64)
    assert float(losses.detail_energy(ramp, flat)) < 0.05 * drawn
    assert float(losses.detail_energy(texture + 0.3, texture)) == pytest.approx(0.0, abs=1e-6)
    # videos work per frame; shapes must match
    v = texture.reshape(1, 3, 2, 64, 64)
    assert float(losses.detail_energy(v, torch.zeros_like(v))) > 0.05
    with pytest.raises(ValueError):
        losses.detail_energy(texture, flat[:, :, :32])


def test_texture_mask_and_the_masked_perceptual_term() -> None:
    g = torch.Generator().manual_seed(1)
    texture = torch.rand(1, 3, 40, 72, generator=g) * 0.4 - 0.2  # tile detail RMS about 0.1
    img = torch.cat([torch.zeros(1, 3, 40, 36), texture[..., 36:]], dim=-1)  # flat left half, texture right
    m = losses.texture_mask(img, 0.02, 0.06)
    assert m.shape == (1, 1, 40, 72)
    assert m[..., :32].max() == 0 and m[..., 48:].min() == 1  # whole tiles: flat ones 0, textured ones 1
    assert float(m.min()) >= 0 and float(m.max()) <= 1
    with pytest.raises(ValueError):
        losses.texture_mask(img, 0.06, 0.02)
    seen = []

    def fn(x, y, weight=None):  # noqa: ANN001, ANN202 - a perceptual function that records its weight map
        seen.append(weight)
        d = (x - y).square().mean(dim=1, keepdim=True)
        return (d if weight is None else d * weight).mean(dim=(1, 2, 3))

    y = img.reshape(1, 3, 1, 40, 72).expand(2, 3, 2, 40, 72)  # videos: per frame, the mask of each target frame
    x = y + 0.1
    plain = float(losses.perceptual(fn, x, y))
    masked = float(losses.perceptual(fn, x, y, texture=(0.02, 0.06)))
    assert seen[0] is None and seen[1].shape == (4, 1, 40, 72)
    assert masked == pytest.approx(plain * float(m.mean()), rel=1e-5)  # the flat half does not count


def test_stlpips_weight_map_is_a_spatial_weighting() -> None:
    from streamvsr.eval.stlpips import STLPIPS

    torch.manual_seed(2)
    net = STLPIPS().eval()  # random weights: the plumbing, not the metric
    for lin in net.lins:
        lin.weight.data.abs_()  # LPIPS' per-channel weights are not negative
    a, b = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        d = net(a, b)
        assert torch.allclose(net(a, b, torch.ones(2, 1, 64, 64)), d, rtol=1e-5)
        assert net(a, b, torch.zeros(2, 1, 64, 64)).abs().max() == 0
        half = torch.ones(2, 1, 64, 64)
        half[..., 32:] = 0
        assert (net(a, b, half) < d).all() and (net(a, b, half) > 0).all()


def test_kl() -> None:
    zeros = torch.zeros(4, 16, 2, 3, 3)
    assert losses.kl_diag_gaussian(zeros, zeros) == 0.0
    assert losses.kl_diag_gaussian(torch.ones_like(zeros), zeros) == pytest.approx(0.5)
    assert losses.kl_diag_gaussian(zeros, torch.full_like(zeros, math.log(2))) == pytest.approx(
        0.5 * (2 - 1 - math.log(2))
    )
    assert losses.kl_diag_gaussian(torch.ones_like(zeros), None) == pytest.approx(0.5)


def test_flow_matching_conventions() -> None:
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 16, 2, 4, 4, generator=g)
    eps = torch.randn(x0.shape, generator=g)
    t = torch.tensor([0.0, 0.3, 1.0])
    xt = losses.flow_matching_xt(x0, eps, t)
    torch.testing.assert_close(xt[0], x0[0])
    torch.testing.assert_close(xt[2], eps[2])
    v = losses.flow_matching_target(x0, eps)
    # FlashVSR's one step from pure noise: x0 = eps - v (spec flashvsr.md §1.4)
    torch.testing.assert_close(losses.x0_from_velocity(xt, v, t), x0)
    torch.testing.assert_close(eps - v, x0)
    assert losses.flow_matching_loss(v, x0, eps) == 0.0
    assert losses.flow_matching_loss(v + 1.0, x0, eps) == pytest.approx(1.0)
    w = torch.tensor([1.0, 0.0, 0.0])
    bad = v.clone()
    bad[1:] += 3.0
    assert losses.flow_matching_loss(bad, x0, eps, weight=w) == 0.0
    ts = losses.sample_flow_timesteps(1000, shift=5.0, generator=g)
    assert ts.min() > 0 and ts.max() < 1 and ts.mean() > 0.5  # shift 5 pushes towards noise
    assert losses.shift_timesteps(torch.tensor([0.0, 1.0]), 5.0).tolist() == [0.0, 1.0]


def test_perceptual_is_pluggable() -> None:
    x = torch.zeros(2, 3, 3, 8, 8)
    assert losses.perceptual(None, x, x) == 0.0
    calls = []

    def fake(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        calls.append(a.shape)
        return (a - b).abs().mean(dim=(1, 2, 3))

    assert losses.perceptual(fake, x, x + 1) == pytest.approx(1.0)
    assert calls == [(6, 3, 8, 8)]  # videos are scored per frame
    assert losses.tc_decoder_loss(x, x + 1, x - 1) == pytest.approx(2.0)
    assert losses.tc_decoder_loss(x, x + 1, None, fake, lam=2.0) == pytest.approx(3.0)


# --- logging ---------------------------------------------------------------------------------------------


def test_jsonl_logger_truncates_on_resume(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    log = JSONLLogger(path)
    for s in range(1, 6):
        log.log({"step": s, "loss": torch.tensor(1.0 / s)})
    with path.open("a") as f:
        f.write('{"step": 6, "lo')  # torn line from a crash
    resumed = JSONLLogger(path, resume_step=3)
    assert [r["step"] for r in resumed.read()] == [1, 2, 3]
    assert JSONLLogger(path).read() == []  # a fresh run starts a fresh log
    off = JSONLLogger(tmp_path / "other.jsonl", enabled=False)
    off.log({"step": 1})
    assert not (tmp_path / "other.jsonl").exists()


# --- export ----------------------------------------------------------------------------------------------


def test_export_shards_within_limit_and_reloads(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    state = {
        "big": torch.randn(100, 300, generator=g),  # 120 kB: split into parts
        "a.weight": torch.randn(40, 40, generator=g),
        "b.bias": torch.randn(7, generator=g),
        "c.weight": torch.randn(30, 50, generator=g),
    }
    limit = 32 * 1024
    files = export_safetensors(state, tmp_path, {"hello": 1}, name="m", max_file_bytes=limit)
    assert len(files) > 3 and all(f.stat().st_size <= limit for f in files)
    loaded, config = load_exported(tmp_path, name="m")
    assert config == {"hello": 1}
    assert set(loaded) == set(state)
    for k, v in state.items():
        assert torch.equal(loaded[k], v)
    # a small export is one file, and stale shards of the big one are gone
    small = {"a.weight": state["a.weight"]}
    files = export_safetensors(small, tmp_path, {"hello": 2}, name="m")
    assert sorted(f.name for f in files) == ["config.json", "m.safetensors"]
    assert not list(tmp_path.glob("m-*")) and not (tmp_path / "m.safetensors.index.json").exists()
    assert torch.equal(load_exported(tmp_path, name="m")[0]["a.weight"], small["a.weight"])
    with pytest.raises(ModelError):
        load_exported(tmp_path / "nowhere")


# --- stage-0 recipe --------------------------------------------------------------------------------------


def _make_data(root: Path) -> Path:
    """Two smooth moving 12-frame clips (32x32) and three photos, all synthetic."""
    rng = np.random.default_rng(0)
    for c in range(2):
        d = root / "videos" / f"clip{c}"
        d.mkdir(parents=True)
        big = np.asarray(Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).resize((64, 64)))
        for f in range(12):
            Image.fromarray(np.ascontiguousarray(big[f : f + 32, 2 * f : 2 * f + 32])).save(d / f"{f:05d}.png")
    d = root / "images"
    d.mkdir()
    for i in range(3):
        arr = rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)
        Image.fromarray(arr).resize((48, 40), Image.BICUBIC).save(d / f"photo_{'abc'[i]}.png")
    return root


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_data(tmp_path_factory.mktemp("ae_data"))


def _args(
    run: Path, data: Path, *extra: str, loader: str = "vsr", roots: tuple[str, ...] = ("videos", "images")
) -> list[str]:
    return [
        "--run-dir", str(run), "--size", "tiny", "--loader", loader,
        *(x for r in roots for x in ("--data", str(data / r))),
        "--frames", "5", "--crop", "32", "--batch-size", "2", "--image-batch-mult", "1",
        "--image-prob", "0.5", "--log-every", "1", "--warmup-steps", "2", "--workers", "0" if loader == "vsr" else "2",
        "--lr", "2e-3", "--device", "cpu", *extra,
    ]  # fmt: skip


def _losses(run: Path) -> list[tuple[int, int, str, float]]:
    recs = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    return [(r["step"], r["samples"], r["kind"], r["loss"]) for r in recs if "loss" in r]


def test_recipe_overfits_a_fixed_batch(tmp_path: Path, data_root: Path) -> None:
    out = stage0.main(_args(tmp_path / "run", data_root, "--fixed-batch", "--max-steps", "20", "--no-export"))
    assert out["step"] == 20 and out["stopped"] == "max_steps"
    ls = [x[3] for x in _losses(tmp_path / "run")]
    assert len(ls) == 20
    assert np.mean(ls[-3:]) < 0.8 * np.mean(ls[:3])


@pytest.mark.parametrize("loader", ["vsr", "ram"])
def test_recipe_resume_matches_uninterrupted_run(tmp_path: Path, data_root: Path, loader: str) -> None:
    stage0.main(_args(tmp_path / "a", data_root, "--max-steps", "6", "--no-export", loader=loader))
    out = stage0.main(_args(tmp_path / "b", data_root, "--max-steps", "3", "--no-export", loader=loader))
    assert out["step"] == 3
    out = stage0.main(_args(tmp_path / "b", data_root, "--max-samples", "6", "--no-export", loader=loader))
    assert out["stopped"] == "max_samples"
    a, b = _losses(tmp_path / "a"), _losses(tmp_path / "b")
    assert {x[2] for x in a} == {"image", "video"}  # both kinds of step happened
    assert [x[:3] for x in a] == [x[:3] for x in b[: len(a)]]
    np.testing.assert_allclose([x[3] for x in b[: len(a)]], [x[3] for x in a], rtol=0, atol=1e-6)
    # the resumed model equals the uninterrupted one at step 6 (a's and b's checkpoints)
    sa = ckpt.load_checkpoint(tmp_path / "a" / "ckpt-000000006.pt")
    sb = ckpt.load_checkpoint(tmp_path / "b" / "ckpt-000000006.pt")
    for k, v in sa["model"].items():
        torch.testing.assert_close(sb["model"][k], v, rtol=0, atol=1e-6)
    assert sa["samples"] == sb["samples"]


def test_ram_loader_with_one_worker_does_not_deadlock(tmp_path: Path, data_root: Path) -> None:
    # the batch cut ahead used to be a job of the same one-worker pool it then waited on
    args = _args(tmp_path / "w", data_root, "--max-steps", "3", "--no-export", loader="ram")
    args[args.index("--workers") + 1] = "0"
    box: dict = {}
    t = threading.Thread(target=lambda: box.update(out=stage0.main(args)), daemon=True)
    t.start()
    t.join(timeout=120)
    assert not t.is_alive(), "the RAM loader hung with --workers 0"
    assert box["out"]["step"] == 3


# Regression pin of the first losses (torchtune-style golden values). They depend only on the seeded
# init, the synthetic data above and the loss; regenerate them after a deliberate change with
#   pytest tests/test_train_infra.py -k golden -s    (the failure message prints the new values)
GOLDEN_FIRST_LOSSES = [0.396414, 0.382295, 0.373298]


def test_recipe_golden_first_losses(tmp_path: Path, data_root: Path) -> None:
    stage0.main(_args(tmp_path / "g", data_root, "--max-steps", "3", "--no-export"))
    got = [x[3] for x in _losses(tmp_path / "g")]
    np.testing.assert_allclose(got, GOLDEN_FIRST_LOSSES, rtol=2e-3, err_msg=f"new values: {got}")


def test_recipe_export_and_reload(tmp_path: Path, data_root: Path) -> None:
    run = tmp_path / "e"
    out = stage0.main(
        _args(run, data_root, "--max-steps", "2", "--stats-batches", "2", "--val-data", str(data_root / "videos"))
    )
    exp = run / "export"
    assert all(f.stat().st_size <= 16 * 2**20 for f in exp.iterdir())
    assert {f.name for f in exp.iterdir()} == {"ae.safetensors", "config.json"}
    cfg = json.loads((exp / "config.json").read_text())
    assert cfg["step"] == 2 and len(cfg["latent_mean"]) == 16 and min(cfg["latent_std"]) > 0
    assert math.isfinite(out["val_psnr"])
    model = load_autoencoder(exp)
    torch.testing.assert_close(model.latent_mean, torch.tensor(cfg["latent_mean"]))
    # the exported weights are the EMA weights of the final checkpoint
    state = ckpt.load_checkpoint(ckpt.find_latest(run))
    for k, v in state["ema"]["weights"].items():
        if not k.startswith("latent_"):  # the latent statistics are measured at export
            torch.testing.assert_close(model.state_dict()[k], v)
    x = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    with torch.no_grad():
        assert model.decode(model.encode(x)).shape == x.shape
    shutil.rmtree(exp / "..", ignore_errors=True)


def test_recipe_rejects_bad_args(tmp_path: Path, data_root: Path) -> None:
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        stage0.main(_args(tmp_path / "x", data_root, "--frames", "6", "--max-steps", "1"))
    for loader in ("vsr", "ram"):  # no source is as large as the crop
        with pytest.raises(DataError):
            stage0.main(_args(tmp_path / "y", data_root, "--crop", "64", "--max-steps", "1", loader=loader))
    # images alone must be asked for explicitly
    args = _args(tmp_path / "z", data_root, "--max-steps", "1", "--no-export", roots=("images",))
    with pytest.raises(DataError, match="image-prob 1"):
        stage0.main(args)
    assert stage0.main([*args, "--image-prob", "1"])["step"] == 1


@pytest.mark.slow
def test_recipe_torchrun_two_processes(tmp_path: Path, data_root: Path) -> None:
    """DDP over gloo with two CPU ranks: one log, samples counted over ranks, per-rank RNG states saved."""
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun not installed")
    run = tmp_path / "ddp"
    logs = tmp_path / "rank_logs"  # each rank's stdout and stderr in files (a rare abort at exit was seen twice)
    cmd = [
        torchrun, "--standalone", "--nproc_per_node=2", "--log-dir", str(logs), "--tee", "3",
        "-m", "streamvsr.recipes.stage0_autoencoder", *_args(run, data_root, "--max-steps", "2", "--no-export"),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    if res.returncode != 0:
        ranks = "\n".join(f"--- {f.relative_to(logs)}:\n{f.read_text()[-1500:]}" for f in sorted(logs.rglob("*.log")))
        log = (run / "log.jsonl").read_text()[-1500:] if (run / "log.jsonl").exists() else "(no log.jsonl)"
        pytest.fail(f"torchrun exit {res.returncode}\n{res.stderr[-1500:]}\n{ranks}\n--- log.jsonl:\n{log}")
    recs = _losses(run)  # rank 0 alone writes the log
    assert [r[0] for r in recs] == [1, 2]
    assert recs[0][1] == 4  # samples count both ranks (2 each)
    state = ckpt.load_checkpoint(ckpt.find_latest(run))
    assert state["step"] == 2 and len(state["rng"]) == 2  # one RNG state per rank
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])


def test_recipe_init_from_an_export(tmp_path: Path, data_root: Path) -> None:
    stage0.main(_args(tmp_path / "first", data_root, "--max-steps", "2", "--stats-batches", "1"))
    exp = load_autoencoder(tmp_path / "first" / "export").state_dict()
    # lr 0: the second run's weights stay the initial ones, which must be the export's, not a fresh init
    stage0.main(
        _args(tmp_path / "second", data_root, "--init", str(tmp_path / "first" / "export"), "--max-steps", "1",
              "--no-export", "--lr", "0", "--warmup-steps", "0")
    )  # fmt: skip
    got = ckpt.load_checkpoint(ckpt.find_latest(tmp_path / "second"))["model"]
    for k, v in exp.items():
        if not k.startswith("latent_"):
            torch.testing.assert_close(got[k], v, rtol=0, atol=0)
    fresh = stage0.main(_args(tmp_path / "third", data_root, "--max-steps", "1", "--no-export", "--lr", "0"))
    assert fresh["step"] == 1
    third = ckpt.load_checkpoint(ckpt.find_latest(tmp_path / "third"))["model"]
    assert any(not torch.equal(third[k], v) for k, v in exp.items() if not k.startswith("latent_"))
