"""FlashVSR training recipes (TCDecoder stage, stages 1-3) on a micro config and a synthetic corpus (CPU)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from micro_configs import MICRO, MICRO_AE, TINY
from PIL import Image

from streamvsr.errors import DataError, ModelError, StreamVSRError
from streamvsr.media.synth import pattern_frame
from streamvsr.models.autoencoder import VideoAutoencoder
from streamvsr.models.flashvsr.config import TCDecoderConfig
from streamvsr.models.flashvsr.tcdecoder import TCDecoder
from streamvsr.pipeline.engine import Engine
from streamvsr.pipeline.flashvsr import FlashVSRUpscaler
from streamvsr.pipeline.flashvsr_weights import load_flashvsr_folder
from streamvsr.recipes import stage1_teacher, stage2_sparse_causal, stage3_dmd, tcdecoder
from streamvsr.train.export import export_safetensors
from streamvsr.train.flashvsr_common import (
    FlashVSRNet,
    check_clip_len,
    clip_latents,
    decode_latent_pair,
    dmd_loss,
    generate_x0,
    hr_for_latents,
    load_tcdecoder,
    lq_input_frames,
    sample_sigmas,
    upsample_lr,
)


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(2)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A synthetic corpus (one 33-frame clip, 3 photos), a random micro autoencoder and the micro config."""
    root = tmp_path_factory.mktemp("fvrecipes")
    clip = root / "data" / "video" / "clip0"
    clip.mkdir(parents=True)
    for i in range(33):
        Image.fromarray(pattern_frame(i, 144, 136)).save(clip / f"{i:05d}.png")
    photos = root / "data" / "images"
    photos.mkdir()
    for j in range(3):
        Image.fromarray(np.ascontiguousarray(pattern_frame(5 * j + 2, 136, 136)[::-1])).save(photos / f"p{j}.png")
    torch.manual_seed(0)
    ae = VideoAutoencoder(MICRO_AE)
    export_safetensors(ae.state_dict(), root / "ae", {"autoencoder": MICRO_AE.to_dict()}, name="ae")
    cfg_path = root / "micro.json"
    cfg_path.write_text(json.dumps(MICRO.to_dict()))
    return {"root": root, "data": root / "data", "ae": root / "ae", "cfg": cfg_path}


def _run(mod: ModuleType, env: dict[str, Path], run: str, *extra: str, crop: int = 128) -> list[dict]:
    """Run a recipe's ``main`` in-process; returns the per-step log records."""
    recs: list[dict] = []
    argv = [
        "--run-dir", str(env["root"] / run),
        "--size", str(env["cfg"]),
        "--data", str(env["data"]),
        "--crop", str(crop),
        "--batch-size", "1",
        "--workers", "0",
        "--degradation", "bi",
        "--log-every", "1",
        "--device", "cpu",
        "--warmup-steps", "0",
        "--lpips-weights", str(env["root"] / "no-lpips.pth"),
        *extra,
    ]  # fmt: skip
    mod.main(argv, callback=recs.append)
    return [r for r in recs if "event" not in r]


# --------------------------------------------------------------------------------------------- pure pieces


def test_upsample_matches_pipeline() -> None:
    up = FlashVSRUpscaler.from_config(TINY, color_fix="none")
    lr = torch.rand(3, 3, 8, 12)
    ours = upsample_lr(lr[None])[0].transpose(0, 1)  # (F, 3, H, W)
    assert torch.equal(ours, up._upsample(lr))


def test_bookkeeping() -> None:
    assert clip_latents(1) == 1 and clip_latents(25) == 6
    with pytest.raises(DataError):
        clip_latents(24)
    with pytest.raises(DataError):
        check_clip_len(21, windowed=True)  # T = 5 is odd
    assert check_clip_len(25, windowed=True) == 6
    hr = torch.zeros(1, 3, 25, 8, 8)
    assert hr_for_latents(hr).shape[2] == 21  # latents 0..5 <- frames 0..20
    img = torch.randn(2, 3, 1, 8, 8)
    lq = lq_input_frames(img)
    assert lq.shape[2] == 5 and torch.equal(lq[:, :, 4], img[:, :, 0])


def test_dmd_loss_gradient() -> None:
    torch.manual_seed(0)
    x0 = torch.randn(2, 4, 2, 3, 3, requires_grad=True)
    real, fake = torch.randn(2, 4, 2, 3, 3), torch.randn(2, 4, 2, 3, 3)
    dmd_loss(x0, real, fake).backward()
    w = (x0.detach() - real).abs().flatten(1).mean(1).view(-1, 1, 1, 1, 1)
    expect = (fake - real) / w / x0.numel()
    assert torch.allclose(x0.grad, expect, atol=1e-6)
    # when the fake score agrees with the sample, a descent step moves the sample towards the real estimate
    x1 = x0.detach().clone().requires_grad_(True)
    dmd_loss(x1, real, x1.detach()).backward()
    before = float((x1.detach() - real).abs().mean())
    assert float((x1.detach() - 100.0 * x1.grad - real).abs().mean()) < before


def test_sample_sigmas_shift() -> None:
    g = torch.Generator().manual_seed(0)
    s = sample_sigmas(20000, 5.0, g)
    assert float(s.min()) > 0 and float(s.max()) < 1
    # median of u is 0.5 -> shifted median 5*0.5/(1+4*0.5) = 5/6
    assert abs(float(s.median()) - 5 / 6) < 0.01
    s2 = sample_sigmas(1000, 5.0, g, t_min=0.2, t_max=0.3)
    assert float(s2.min()) >= 5 * 0.2 / 1.8 - 1e-6 and float(s2.max()) <= 5 * 0.3 / 2.2 + 1e-6


class _RecordingDecoder(torch.nn.Module):
    """Stands in for the TCDecoder in the pipeline: records the latents and LR condition it is given."""

    def __init__(self, cfg: TCDecoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.latents: list[torch.Tensor] = []
        self.conds: list[torch.Tensor] = []

    def reset(self) -> None:
        pass

    def decode(self, latents: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        self.latents.append(latents.clone())
        self.conds.append(cond.clone())
        return torch.zeros(1, 3, cond.shape[2], *cond.shape[-2:])


def test_generator_matches_streaming_pipeline() -> None:
    """The stage-2/3 whole-clip student equals the streaming upscaler: same LQ tokens, noise, KV-cache windows,
    and the TCDecoder condition of the training pixel loss is the one the pipeline passes."""
    torch.manual_seed(1)
    net = FlashVSRNet(MICRO).eval()
    t = 10  # call 0 (6 latents) + 2 steady calls; window 4 sees windows 1..4 (window 0 evicted)
    lr = torch.rand(1 + 4 * t, 3, 32, 64)
    g = torch.Generator().manual_seed(3)
    shape = (128 // 8, 256 // 8)
    # the pipeline's "stream" noise: one draw per DiT call from a generator seeded at the stream start
    draws = [torch.randn((1, 16, 6, *shape), generator=g)]
    draws += [torch.randn((1, 16, 2, *shape), generator=g) for _ in range((t - 6) // 2)]
    noise = torch.cat(draws, dim=2)
    with torch.no_grad():
        lr_up = upsample_lr(lr[None])
        x0 = generate_x0(net, lq_input_frames(lr_up), noise, MICRO.attention)
    rec = _RecordingDecoder(MICRO.decoder)
    up = FlashVSRUpscaler(net.dit, net.lq_proj, rec, MICRO, color_fix="none", seed=3)
    out = torch.cat([up.push(lr[i : i + 7]) for i in range(0, lr.shape[0], 7)])
    assert out.shape[0] == 4 * t - 3
    got = torch.cat(rec.latents, dim=2)
    assert got.shape == x0.shape
    assert torch.allclose(got, x0, atol=1e-5), (got - x0).abs().max()
    assert torch.equal(torch.cat(rec.conds, dim=2), lr_up[:, :, : 4 * t - 3])


def test_decode_latent_pair_matches_full_decode() -> None:
    torch.manual_seed(2)
    dec = TCDecoder(MICRO.decoder).eval()
    lat = torch.randn(1, 16, 5, 4, 4)
    cond = torch.rand(1, 3, 17, 32, 32) * 2 - 1
    full = dec(lat, cond)
    for k in (0, 2, 3):
        out, (s, e) = decode_latent_pair(dec, lat, cond, k)
        assert (s, e) == ((0, 5) if k == 0 else (4 * k - 3, 4 * k + 5))
        assert torch.allclose(out, full[:, :, s:e], atol=1e-5)


def test_perceptual_optional(tmp_path: Path) -> None:
    from streamvsr.train.flashvsr_common import build_perceptual

    why: list[str] = []
    assert build_perceptual(2.0, str(tmp_path / "missing.pth"), torch.device("cpu"), why.append) is None
    assert why and build_perceptual(0.0, None, torch.device("cpu")) is None


# --------------------------------------------------------------------------------------------- recipes


@pytest.fixture(scope="module")
def tc_run(env: dict[str, Path]) -> list[dict]:
    return _run(tcdecoder, env, "tc", "--ae", str(env["ae"]), "--clip-len", "9", "--max-steps", "5",
                "--fixed-batch", "--lr", "3e-3", "--latent-noise", "0.05", crop=64)  # fmt: skip


def test_tcdecoder_stage_overfits_and_exports(env: dict[str, Path], tc_run: list[dict]) -> None:
    losses = [r["loss"] for r in tc_run]
    assert len(losses) == 5 and all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    assert tc_run[0]["lpips_gt"] == 0.0  # no LPIPS weights -> term dropped
    dec = load_tcdecoder(env["root"] / "tc" / "export", MICRO.decoder, torch.device("cpu"))
    dec2 = load_tcdecoder(env["root"] / "tc", MICRO.decoder, torch.device("cpu"))  # the run dir (EMA)
    for a, b in zip(dec.state_dict().values(), dec2.state_dict().values()):
        assert torch.equal(a, b)
    assert load_tcdecoder(env["root"] / "tc", None, torch.device("cpu")).cfg == MICRO.decoder  # the stored one
    with pytest.raises(ModelError):
        load_tcdecoder(env["root"] / "tc", TINY.decoder, torch.device("cpu"))


def test_tcdecoder_train_encoder_resumes_and_exports_the_tuned_ae(env: dict[str, Path]) -> None:
    """--train-encoder: the encoder learns too (conditional AE), resume is exact, export_ae holds it."""
    from streamvsr.train.export import load_autoencoder

    common = ("--ae", str(env["ae"]), "--clip-len", "9", "--fixed-batch", "--lr", "3e-3", "--train-encoder")
    full = _run(tcdecoder, env, "tcj-full", *common, "--max-steps", "4", crop=64)
    part = _run(tcdecoder, env, "tcj-part", *common, "--max-steps", "2", crop=64)
    part += _run(tcdecoder, env, "tcj-part", *common, "--max-steps", "2", crop=64)
    assert [r["step"] for r in part] == [1, 2, 3, 4]
    for a, b in zip(full, part):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6, abs=1e-7)
        assert a["mse_ae"] == 0.0
    assert full[-1]["loss"] < full[0]["loss"]
    src = load_autoencoder(env["ae"], device="cpu")
    tuned = load_autoencoder(env["root"] / "tcj-full" / "export_ae", device="cpu")
    a, b = src.state_dict(), tuned.state_dict()
    assert set(a) == set(b)
    enc = [k for k in a if k.startswith("encoder.") and a[k].is_floating_point()]
    assert any(not torch.equal(a[k], b[k]) for k in enc)  # the encoder moved
    for k in a:
        if not k.startswith("encoder."):
            assert torch.equal(a[k], b[k]), k  # decoder and latent statistics are stage 0's
    load_tcdecoder(env["root"] / "tcj-full" / "export", MICRO.decoder, torch.device("cpu"))


def test_tcdecoder_encode_lr_feeds_the_encoder_the_condition(
    env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--encode-lr: the encoder sees the bicubic LR condition, never the HR clip; it needs --train-encoder."""
    seen: list[bool] = []
    real = tcdecoder._EncodeDecode.forward

    def spy(self, x, cond, *rest):  # noqa: ANN001, ANN002, ANN202
        seen.append(torch.equal(x, cond))
        return real(self, x, cond, *rest)

    monkeypatch.setattr(tcdecoder._EncodeDecode, "forward", spy)
    common = ("--ae", str(env["ae"]), "--clip-len", "9", "--fixed-batch", "--lr", "3e-3", "--train-encoder")
    rows = _run(tcdecoder, env, "tcj-lr", *common, "--encode-lr", "--max-steps", "3", crop=64)
    assert seen == [True, True, True] and rows[-1]["loss"] < rows[0]["loss"]
    _run(tcdecoder, env, "tcj-hr", *common, "--max-steps", "1", crop=64)
    assert seen[-1] is False  # without the flag the HR clip goes in
    with pytest.raises(ModelError, match="--encode-lr needs --train-encoder"):
        _run(tcdecoder, env, "tc-lr-bad", "--ae", str(env["ae"]), "--clip-len", "9", "--encode-lr",
             "--max-steps", "1", crop=64)  # fmt: skip


@pytest.fixture(scope="module")
def s1_run(env: dict[str, Path]) -> list[dict]:
    return _run(stage1_teacher, env, "s1", "--ae", str(env["ae"]), "--clip-len", "25", "--max-steps", "5",
                "--fixed-batch", "--lr", "3e-3")  # fmt: skip


def test_stage1_overfits(s1_run: list[dict]) -> None:
    losses = [r["loss"] for r in s1_run]
    assert len(losses) == 5 and all(np.isfinite(losses))
    assert losses[-1] < losses[0]


def test_stage1_resume_is_exact(env: dict[str, Path]) -> None:
    """2 + 2 steps with a stop in between log the same losses as 4 uninterrupted steps (images and videos)."""
    common = ("--ae", str(env["ae"]), "--clip-len", "9", "--lr", "1e-3", "--image-prob", "0.5", "--seed", "2")
    full = _run(stage1_teacher, env, "s1-full", *common, "--max-steps", "4", crop=64)
    part = _run(stage1_teacher, env, "s1-part", *common, "--max-steps", "2", crop=64)
    part += _run(stage1_teacher, env, "s1-part", *common, "--max-steps", "2", crop=64)
    assert [r["step"] for r in part] == [1, 2, 3, 4]
    assert {r["kind"] for r in full} == {"image", "video"}
    for a, b in zip(full, part):
        assert a["kind"] == b["kind"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6, abs=1e-7)
    log = [json.loads(x) for x in (env["root"] / "s1-part" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3, 4]
    with pytest.raises(StreamVSRError):  # another config in the same run dir
        _run(stage1_teacher, env, "s1-part", *common, "--max-steps", "1", "--size", "tiny", crop=64)


def test_stage1_packed_images(env: dict[str, Path]) -> None:
    recs = _run(stage1_teacher, env, "s1-pack", "--ae", str(env["ae"]), "--clip-len", "9", "--max-steps", "2",
                "--pack-images", "2", crop=64)  # fmt: skip
    assert [r["kind"] for r in recs] == ["pack", "pack"] and all(np.isfinite(r["loss"]) for r in recs)


def test_stage2_needs_init_and_overfits(env: dict[str, Path], s1_run: list[dict]) -> None:
    common = ("--ae", str(env["ae"]), "--clip-len", "25", "--fixed-batch", "--lr", "3e-3")
    with pytest.raises(ModelError):
        _run(stage2_sparse_causal, env, "s2-noinit", *common, "--max-steps", "1")
    init = ("--init", str(env["root"] / "s1"))
    recs = _run(stage2_sparse_causal, env, "s2", *common, "--max-steps", "4", *init, "--workers", "1")
    losses = [r["loss"] for r in recs]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_stage3_overfits_and_export_runs_in_engine(
    env: dict[str, Path], tc_run: list[dict], s1_run: list[dict]
) -> None:
    out = env["root"] / "final"
    args = ("--clip-len", "25", "--fixed-batch", "--lr", "3e-3", "--init", str(env["root"] / "s1"),
            "--teacher", str(env["root"] / "s1"), "--tcdecoder", str(env["root"] / "tc"))  # fmt: skip
    recs = _run(stage3_dmd, env, "s3", *args, "--max-steps", "4")
    for key in ("loss_g", "dmd", "mse", "fm_fake"):
        assert all(np.isfinite(r[key]) for r in recs), key
    assert recs[-1]["mse"] < recs[0]["mse"]
    assert recs[-1]["fm_fake"] < recs[0]["fm_fake"]
    # exporting the latest checkpoint gives a folder the weights loader and the streaming engine accept
    _run(stage3_dmd, env, "s3", *args, "--export-only", "--export", str(out))
    assert all(f.stat().st_size <= 16 * 2**20 for f in out.iterdir())
    cfg, mods = load_flashvsr_folder(out)
    assert cfg == dataclasses.replace(MICRO, vae=None)
    up = FlashVSRUpscaler(mods["dit"], mods["lq_proj"], mods["decoder"], cfg, context=mods["context"])
    for n in (3, 22):
        frames = torch.rand(n, 3, 20, 28)
        res = Engine(up).run(frames, chunk=7)
        assert res.shape == (n, 3, 80, 112) and bool(torch.isfinite(res).all())


def test_stage3_train_decoder_resumes_and_exports_the_tuned_decoder(
    env: dict[str, Path], tc_run: list[dict], s1_run: list[dict]
) -> None:
    """--train-decoder: the TCDecoder is fine-tuned end to end (its own EMA, exported), resume is exact."""
    args = ("--clip-len", "25", "--fixed-batch", "--lr", "3e-3", "--init", str(env["root"] / "s1"),
            "--teacher", str(env["root"] / "s1"), "--tcdecoder", str(env["root"] / "tc"), "--train-decoder",
            "--dmd-weight", "0.1", "--mse-weight", "4", "--temporal-weight", "4")  # fmt: skip
    nopix = ("--mse-weight", "0", "--lpips-weight", "0", "--temporal-weight", "0")
    with pytest.raises(ModelError):
        _run(stage3_dmd, env, "s3d-nopix", *args, *nopix, "--max-steps", "1")
    full = _run(stage3_dmd, env, "s3d-full", *args, "--max-steps", "4")
    part = _run(stage3_dmd, env, "s3d-part", *args, "--max-steps", "2")
    part += _run(stage3_dmd, env, "s3d-part", *args, "--max-steps", "2")
    for a, b in zip(full, part, strict=True):
        assert a["loss_g"] == pytest.approx(b["loss_g"], rel=1e-5, abs=1e-7)
        assert a["grad_norm_d"] > 0
    assert full[-1]["mse"] < full[0]["mse"]
    assert full[0]["temporal"] > 0 and full[-1]["temporal"] < full[0]["temporal"]
    out = env["root"] / "final-d"
    _run(stage3_dmd, env, "s3d-full", *args, "--export-only", "--export", str(out))
    _, mods = load_flashvsr_folder(out)
    frozen = load_tcdecoder(env["root"] / "tc", MICRO.decoder, torch.device("cpu")).state_dict()
    tuned = mods["decoder"].state_dict()
    assert any(not torch.equal(frozen[k].float(), tuned[k].float()) for k in frozen)


def test_stage3_without_dmd_leaves_both_scores_idle(
    env: dict[str, Path], tc_run: list[dict], s1_run: list[dict]
) -> None:
    """--dmd-weight 0: pixel losses only; the real and fake scores run no forward and the fake is not trained."""
    args = ("--clip-len", "25", "--fixed-batch", "--lr", "3e-3", "--init", str(env["root"] / "s1"),
            "--teacher", str(env["root"] / "s1"), "--tcdecoder", str(env["root"] / "tc"), "--dmd-weight", "0",
            "--max-steps", "3")  # fmt: skip
    recs = _run(stage3_dmd, env, "s3-nodmd", *args)
    assert all(r["dmd"] == 0 and r["fm_fake"] == 0 and r["real_fake_gap"] == 0 for r in recs)
    assert all(r["grad_norm_f"] == 0 for r in recs) and recs[-1]["mse"] < recs[0]["mse"]
    # without DMD the teacher is not needed: the same run without it gives the same losses
    no_teacher = [a for i, a in enumerate(args) if a != "--teacher" and (i == 0 or args[i - 1] != "--teacher")]
    recs2 = _run(stage3_dmd, env, "s3-nodmd-noteacher", *no_teacher)
    assert [r["mse"] for r in recs2] == [r["mse"] for r in recs]
    with pytest.raises(ModelError, match="with DMD needs --teacher"):
        _run(stage3_dmd, env, "s3-dmd-noteacher", *no_teacher[:-4], "--max-steps", "1")


def test_stage3_detail_energy_term_alone(env: dict[str, Path], tc_run: list[dict], s1_run: list[dict]) -> None:
    """--detail-energy-weight is a pixel term of its own: alone it drives the generator loss (weight x term)."""
    args = ("--clip-len", "25", "--fixed-batch", "--lr", "3e-3", "--init", str(env["root"] / "s1"),
            "--teacher", str(env["root"] / "s1"), "--tcdecoder", str(env["root"] / "tc"), "--dmd-weight", "0",
            "--mse-weight", "0", "--lpips-weight", "0", "--detail-energy-weight", "2", "--max-steps", "2")  # fmt: skip
    recs = _run(stage3_dmd, env, "s3-de", *args)
    assert all(r["detail_energy"] > 0 for r in recs)  # (mse is logged, with weight 0)
    assert all(r["loss_g"] == pytest.approx(2 * r["detail_energy"], rel=1e-6) for r in recs)


def test_fixed_text_context_round_trip(env: dict[str, Path], tc_run: list[dict]) -> None:
    """A size without a learned context trains with --context and exports it inside the folder."""
    cfg = dataclasses.replace(MICRO, dit=dataclasses.replace(MICRO.dit, learned_context=False, text_dim=8))
    path = env["root"] / "ctx.json"
    path.write_text(json.dumps(cfg.to_dict()))
    ctx = torch.randn(1, 4, 8)
    torch.save(ctx, env["root"] / "prompt.pth")
    args = ("--size", str(path), "--ae", str(env["ae"]), "--clip-len", "9", "--max-steps", "1")
    with pytest.raises(ModelError):
        _run(stage1_teacher, env, "s1-ctx-missing", *args, crop=64)
    out = env["root"] / "ctx-export"
    recs = _run(stage1_teacher, env, "s1-ctx", *args, "--context", str(env["root"] / "prompt.pth"),
                "--tcdecoder", str(env["root"] / "tc"), "--export", str(out), crop=64)  # fmt: skip
    assert np.isfinite(recs[0]["loss"])
    loaded, mods = load_flashvsr_folder(out)
    assert not loaded.dit.learned_context and torch.equal(mods["context"], ctx)


def test_fixed_batch_iterator_loads_once() -> None:
    """--fixed-batch: the step-0 batch is built once and repeated (a fixed-batch run times the step, not the
    loaders); otherwise every step is asked for in order."""
    from streamvsr.train.flashvsr_common import batch_iterator

    class Counting(torch.utils.data.Dataset):
        def __init__(self) -> None:
            self.asked: list[int] = []

        def __getitem__(self, step: int) -> list[int]:
            self.asked.append(step)
            return [step]

    data = Counting()
    it = batch_iterator(data, 5, workers=0, fixed=True)
    got = [next(it) for _ in range(4)]
    assert data.asked == [5] and all(b is got[0] for b in got)
    data = Counting()
    it = batch_iterator(data, 5, workers=0)
    assert [next(it) for _ in range(3)] == [[5], [6], [7]] and data.asked == [5, 6, 7]


def test_image_prob_default_and_no_silent_video_only_run(env: dict[str, Path]) -> None:
    """--image-prob defaults to 0.2 with photos and 0 without; asked for without photos, it is an error."""
    from streamvsr.errors import DataError
    from streamvsr.train.data import IMAGE_PROB_DEFAULT, DataRoot, resolve_image_prob, scan_roots
    from streamvsr.train.flashvsr_common import ClipBatches

    assert resolve_image_prob(None, True) == IMAGE_PROB_DEFAULT and resolve_image_prob(None, False) == 0.0
    assert resolve_image_prob(0.0, False) == 0.0 and resolve_image_prob(0.5, True) == 0.5
    kw = {"clip_len": 9, "crop": 64, "batch_size": 1, "seed": 0}
    both = scan_roots([DataRoot(env["data"] / "video", "video"), DataRoot(env["data"] / "images", "images")])
    videos = [e for e in both if e.kind != "image"]
    assert ClipBatches(both, image_prob=None, **kw).image_prob == IMAGE_PROB_DEFAULT
    assert ClipBatches(videos, image_prob=None, **kw).image_prob == 0.0
    with pytest.raises(DataError, match="no usable still images"):
        ClipBatches(videos, image_prob=0.2, **kw)
    _run(stage1_teacher, env, "s1-auto", "--ae", str(env["ae"]), "--clip-len", "9", "--max-steps", "1", crop=64)
    start = [json.loads(x) for x in (env["root"] / "s1-auto" / "log.jsonl").read_text().splitlines()][0]
    assert start["event"] == "start" and start["image_prob"] == IMAGE_PROB_DEFAULT  # the log says what ran


def test_stage3_lpips_mask_option() -> None:
    import argparse

    assert stage3_dmd._low_high("0.02:0.06") == (0.02, 0.06)
    for bad in ("0.06:0.02", "0.02", "a:b"):
        with pytest.raises(argparse.ArgumentTypeError):
            stage3_dmd._low_high(bad)
    args = stage3_dmd.build_parser().parse_args(["--run-dir", "r", "--lpips-mask", "0.02:0.06"])
    assert args.lpips_mask == (0.02, 0.06)
    assert stage3_dmd.build_parser().parse_args(["--run-dir", "r"]).lpips_mask is None
