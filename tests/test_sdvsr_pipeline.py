"""Stream-DiffVSR pipeline: official layout loading, the compatibility checklist (against a literal offline
re-implementation of the reference algorithm), streaming = offline, frame counts and sizes, errors."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

diffusers = pytest.importorskip("diffusers")

from streamvsr.errors import ModelError  # noqa: E402
from streamvsr.pipeline.engine import Engine  # noqa: E402
from streamvsr.pipeline.registry import load_model  # noqa: E402
from streamvsr.pipeline.streamdiffvsr import (  # noqa: E402
    OFFICIAL_CONTROLNET_EMBED,
    OFFICIAL_SCHEDULER_CONFIG,
    OFFICIAL_UNET_CONFIG,
    PROMPT_EMBEDS_FILE,
    StreamDiffVSRUpscaler,
    build_components,
    ddim_schedule,
    ddim_step,
    load_components,
    save_components,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread_module")


@pytest.fixture(scope="module")
def comps():
    c = build_components("tiny", seed=0)
    with torch.no_grad():  # make the decoder overshoot [-1, 1] so that clamping before the warp would show
        c.vae.decoder.layers[-1].weight.mul_(20)
    return c


@pytest.fixture(scope="module")
def weights_dir(comps, tmp_path_factory) -> Path:
    return save_components(comps, tmp_path_factory.mktemp("sdvsr") / "Stream-DiffVSR")


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "w"
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------ the literal reference (spec section 1.2)


def reference_offline(c, frames: torch.Tensor, seed: int = 42) -> torch.Tensor:
    """The official algorithm, offline: all bicubic copies, noise and flows first, then the causal loop."""
    n, _, h, w = frames.shape
    x_lr = frames * 2 - 1  # (N, 3, h, w)
    ups = F.interpolate(x_lr, scale_factor=4, mode="bicubic", align_corners=False)  # RAFT inputs only
    gen = torch.Generator().manual_seed(seed)
    noise = [torch.randn((1, 4, h, w), generator=gen) for _ in range(n)]
    flows = [None] + [c.raft(ups[i : i + 1], ups[i - 1 : i], num_flow_updates=12) for i in range(1, n)]
    emb = c.prompt_embeds
    sched = diffusers.DDIMScheduler.from_config(c.scheduler.config)
    sched.set_timesteps(4)
    outs, prev = [], None
    for i in range(n):
        cond = feats = None
        if i > 0:
            fl = flows[i]  # (1, 2, H, W)
            hh, ww = fl.shape[-2:]
            gy, gx = torch.meshgrid(torch.arange(hh).float(), torch.arange(ww).float(), indexing="ij")
            grid = torch.stack([2 * (gx + fl[0, 0]) / (ww - 1) - 1, 2 * (gy + fl[0, 1]) / (hh - 1) - 1], -1)
            cond = F.grid_sample(prev, grid[None], mode="bilinear", padding_mode="zeros", align_corners=False)
            layers = list(c.vae.encoder.layers)
            x, enc = cond, []
            for k in range(10):  # raw [-1, 1] input, block outputs 1, 3-5, 7-9
                x = layers[k](x)
                if k in (1, 3, 4, 5, 7, 8, 9):
                    enc.append(x)
            feats = enc[::-1]
        z = noise[i]
        for t in sched.timesteps:
            inp = torch.cat([z, x_lr[i : i + 1]], dim=1)
            kw = {}
            if cond is not None:
                down, mid = c.controlnet(
                    inp,
                    t,
                    encoder_hidden_states=emb,
                    controlnet_cond=cond,
                    conditioning_scale=1.0,
                    return_dict=False,
                )
                kw = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
            v = c.unet(inp, t, encoder_hidden_states=emb, return_dict=False, **kw)[0]
            z = sched.step(v, t, z, eta=0.0).prev_sample
        prev = c.vae.decoder(z, feats)  # unclamped, kept for the next warp
        outs.append(((prev + 1) / 2).clamp(0, 1))
    return torch.cat(outs)


# ------------------------------------------------------------------ scheduler


def test_official_schedule_and_ddim_step_match_diffusers() -> None:
    sched = diffusers.DDIMScheduler(**OFFICIAL_SCHEDULER_CONFIG)
    s = ddim_schedule(sched, 4)
    assert [t for t, _, _ in s] == [999, 749, 499, 249]
    want = [0.000733, 0.03861, 0.33319, 0.82152]  # spec section 1.3
    assert [round(a, 6 if a < 0.001 else 5) for _, a, _ in s] == want
    assert s[-1][2] == pytest.approx(0.9999, abs=1e-6)
    g = torch.Generator().manual_seed(0)
    for steps, pred in ((4, "v_prediction"), (3, "v_prediction"), (4, "epsilon")):
        sched = diffusers.DDIMScheduler(**{**OFFICIAL_SCHEDULER_CONFIG, "prediction_type": pred})
        schedule = ddim_schedule(sched, steps)
        z = torch.randn(1, 4, 5, 6, generator=g)
        for t, a_t, a_prev in schedule:
            out = torch.randn(1, 4, 5, 6, generator=g)
            want_z = sched.step(out, t, z, eta=0.0).prev_sample
            z = ddim_step(z, out, a_t, a_prev, pred)
            torch.testing.assert_close(z, want_z, atol=1e-5, rtol=1e-5)
    custom = ddim_schedule(sched, timesteps=[999, 500, 100])
    assert [t for t, _, _ in custom] == [999, 500, 100] and custom[0][2] == pytest.approx(
        float(sched.alphas_cumprod[500])
    )
    with pytest.raises(ValueError):
        ddim_schedule(sched, timesteps=[100, 500])


def test_official_configs_have_the_published_sizes() -> None:
    with torch.device("meta"):
        unet = diffusers.UNet2DConditionModel(**OFFICIAL_UNET_CONFIG)
        cn = diffusers.ControlNetModel.from_unet(
            unet, conditioning_embedding_out_channels=OFFICIAL_CONTROLNET_EMBED, load_weights_from_unet=False
        )
    assert round(sum(p.numel() for p in unet.parameters()) / 1e6, 2) == 472.37
    assert round(sum(p.numel() for p in cn.parameters()) / 1e6, 2) == 207.70


# ------------------------------------------------------------------ the checklist via the reference


def test_streaming_equals_offline_reference(comps) -> None:
    torch.manual_seed(5)
    frames = torch.rand(5, 3, 8, 12)
    with torch.no_grad():
        want = reference_offline(comps, frames)
        hr0 = comps.vae.decoder(torch.randn(1, 4, 8, 12))
    assert hr0.abs().max() > 1.5  # the test model overshoots: the warp must see the unclamped output
    up = StreamDiffVSRUpscaler(comps, "cpu", flow="raft", seed=42)
    per_frame = torch.cat([up.push(frames[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(per_frame, want, atol=2e-5, rtol=1e-4)
    up.reset()
    torch.testing.assert_close(up.push(frames), per_frame, atol=1e-6, rtol=1e-6)  # one push of all 5
    out = Engine(up).run(frames, chunk=2)
    torch.testing.assert_close(out, per_frame, atol=1e-6, rtol=1e-6)


def test_state_is_previous_frame_only_and_constant(comps) -> None:
    up = StreamDiffVSRUpscaler(comps, "cpu", flow="raft")

    def state_bytes() -> dict[str, int]:
        return {k: v.numel() * v.element_size() for k, v in vars(up).items() if isinstance(v, torch.Tensor)}

    frames = torch.rand(6, 3, 8, 12)
    up.push(frames[:2])
    after2 = state_bytes()
    up.push(frames[2:])
    assert state_bytes() == after2
    assert set(after2) == {"_prev_hr", "_prev_lr", "prompt_embeds"}
    assert up._prev_hr.shape == (1, 3, 32, 48) and up._prev_lr.shape == (1, 3, 8, 12)
    assert up._prev_hr.abs().max() > 1  # unclamped
    up.reset()
    assert up._prev_hr is None and up._prev_lr is None


def test_first_frame_has_no_controlnet_and_later_frames_do(comps) -> None:
    up = StreamDiffVSRUpscaler(comps, "cpu", flow="raft")
    calls: list[tuple[int, tuple[int, ...]]] = []
    h = up.controlnet.register_forward_pre_hook(
        lambda m, a, kw: calls.append((up.frames_done, tuple(a[0].shape))), with_kwargs=True
    )
    seen: list[torch.Tensor] = []
    h2 = up.unet.register_forward_pre_hook(lambda m, a: seen.append(a[0].clone()))
    try:
        frames = torch.rand(3, 3, 8, 12)
        up.push(frames)
    finally:
        h.remove()
        h2.remove()
    assert [f for f, _ in calls] == [1] * 4 + [2] * 4  # all 4 steps guided from frame 1 on
    assert all(s == (1, 7, 8, 12) for _, s in calls)
    assert len(seen) == 12
    for k, x in enumerate(seen):  # [latent(4), LR RGB(3) in [-1, 1]]
        torch.testing.assert_close(x[:, 4:], frames[k // 4 : k // 4 + 1] * 2 - 1)


def test_seed_and_reset(comps) -> None:
    frames = torch.rand(2, 3, 8, 12)
    up = StreamDiffVSRUpscaler(comps, "cpu", flow="raft", seed=7)
    a = up.push(frames)
    up.reset()
    torch.testing.assert_close(up.push(frames), a)
    other = StreamDiffVSRUpscaler(comps, "cpu", flow="raft", seed=8).push(frames)
    assert not torch.allclose(other, a)


@pytest.mark.parametrize("n", [1, 2, 5])
def test_frame_counts_and_sizes_through_engine(comps, n: int) -> None:
    up = StreamDiffVSRUpscaler(comps, "cpu", flow="dis", flow_resolution="lr")
    frames = torch.rand(n, 3, 10, 13)  # not multiples of 4: the engine pads and crops back
    eng = Engine(up)
    out = eng.run(frames, chunk=2)
    assert out.shape == (n, 3, 40, 52)
    assert out.dtype == torch.float32 and float(out.min()) >= 0 and float(out.max()) <= 1
    assert up.spec.latency == 0 and up.spec.scale == 4 and up.spec.multiple == 4


@pytest.mark.parametrize("resolution", ["lr", 0.5])
def test_reduced_resolution_flow_runs(comps, resolution) -> None:
    up = StreamDiffVSRUpscaler(comps, "cpu", flow="raft", flow_resolution=resolution, raft_iters=2)
    assert up.push(torch.rand(2, 3, 8, 12)).shape == (2, 3, 32, 48)


# ------------------------------------------------------------------ loading


def test_official_layout_loads_and_matches(comps, weights_dir) -> None:
    index = json.loads((weights_dir / "model_index.json").read_text())
    assert index["vae"] == [None, "TemporalAutoencoderTiny"]
    loaded = load_components(weights_dir)
    assert isinstance(loaded.unet, diffusers.UNet2DConditionModel)
    assert isinstance(loaded.controlnet, diffusers.ControlNetModel)
    assert loaded.scheduler.config.prediction_type == "v_prediction"
    assert loaded.scheduler.config.timestep_spacing == "trailing"
    assert loaded.raft is not None
    for a, b in ((comps.vae, loaded.vae), (comps.raft, loaded.raft), (comps.unet, loaded.unet)):
        for (k, v), (k2, v2) in zip(a.state_dict().items(), b.state_dict().items()):
            assert k == k2 and torch.equal(v, v2)
    frames = torch.rand(2, 3, 8, 12)
    a = StreamDiffVSRUpscaler(comps, "cpu", flow="raft").push(frames)
    b = StreamDiffVSRUpscaler(loaded, "cpu", flow="raft").push(frames)
    torch.testing.assert_close(a, b)


def test_registry_builds_it(weights_dir) -> None:
    model = load_model("stream-diffvsr", weights=weights_dir, device="cpu", attention="auto", seed=3)
    assert isinstance(model, StreamDiffVSRUpscaler) and model.seed == 3
    with pytest.raises(ModelError, match="needs --weights"):
        load_model("stream-diffvsr")
    with pytest.raises(ModelError, match="does not apply"):
        load_model("stream-diffvsr", weights=weights_dir, color_fix="wavelet")
    with pytest.raises(ModelError, match="unknown stream-diffvsr option"):
        load_model("stream-diffvsr", weights=weights_dir, warp_mode="nearest")


def test_missing_raft_falls_back_to_dis_with_a_warning(weights_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    w = _copy(weights_dir, tmp_path)
    shutil.rmtree(w / "raft")
    c = load_components(w)
    assert c.raft is None
    with pytest.warns(UserWarning, match="DIS"):
        up = StreamDiffVSRUpscaler(c, "cpu")
    assert up.flow.method == "dis"
    with pytest.raises(ModelError, match="RAFT"):
        StreamDiffVSRUpscaler(c, "cpu", flow="raft")


def _break(w: Path, what: str) -> None:
    if what == "no vae":
        shutil.rmtree(w / "vae")
    elif what == "no prompt":
        (w / PROMPT_EMBEDS_FILE).unlink()
    elif what == "plain taesd":
        from safetensors.torch import load_file, save_file

        p = w / "vae" / "diffusion_pytorch_model.safetensors"
        save_file({k: v for k, v in load_file(str(p)).items() if "temporal" not in k}, str(p))
    elif what == "missing key":
        from safetensors.torch import load_file, save_file

        p = w / "vae" / "diffusion_pytorch_model.safetensors"
        sd = load_file(str(p))
        del sd["decoder.layers.12.alpha"]
        save_file(sd, str(p))
    elif what == "class embedding":
        cfg = json.loads((w / "unet" / "config.json").read_text())
        cfg["num_class_embeds"] = 1000
        (w / "unet" / "config.json").write_text(json.dumps(cfg))
    elif what == "no unet weights":
        for p in (w / "unet").glob("*.safetensors"):
            p.unlink()
    elif what == "bad raft":
        from safetensors.torch import save_file

        save_file({"foo": torch.zeros(1)}, str(w / "raft" / "raft.safetensors"))
    elif what == "bad prompt":
        from safetensors.torch import save_file

        save_file({"prompt_embeds": torch.zeros(2, 3, 4, 5)}, str(w / PROMPT_EMBEDS_FILE))


@pytest.mark.parametrize(
    "what, match",
    [
        ("no vae", "vae/"),
        ("no prompt", "empty prompt"),
        ("plain taesd", "TPM"),
        ("missing key", "lacks 1 keys"),
        ("class embedding", "class embedding"),
        ("no unet weights", "cannot load unet/"),
        ("bad raft", "RAFT"),
        ("bad prompt", "prompt_embeds"),
    ],
)
def test_broken_folders_raise_model_error(weights_dir, tmp_path, what: str, match: str) -> None:
    w = _copy(weights_dir, tmp_path)
    _break(w, what)
    with warnings.catch_warnings(), pytest.raises(ModelError, match=match):
        warnings.simplefilter("ignore")
        load_components(w)


def test_not_a_folder(tmp_path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_components(tmp_path / "nope")
    with pytest.raises(ModelError, match="not a Stream-DiffVSR folder"):
        load_components(tmp_path)


def test_text_encoder_path(weights_dir, tmp_path) -> None:
    """text_encoder/ + tokenizer/ instead of the saved embedding (needs transformers)."""
    tr = pytest.importorskip("transformers")
    w = _copy(weights_dir, tmp_path)
    (w / PROMPT_EMBEDS_FILE).unlink()
    vocab = {"!": 0, "<|startoftext|>": 1, "<|endoftext|>": 2, "a</w>": 3}
    (w / "tokenizer").mkdir()
    (w / "tokenizer" / "vocab.json").write_text(json.dumps(vocab))
    (w / "tokenizer" / "merges.txt").write_text("#version: 0.2\n")
    tok = tr.CLIPTokenizer(str(w / "tokenizer" / "vocab.json"), str(w / "tokenizer" / "merges.txt"), pad_token="!")
    tok.save_pretrained(str(w / "tokenizer"))
    cfg = tr.CLIPTextConfig(
        vocab_size=4, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=77, bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )  # fmt: skip
    tr.CLIPTextModel(cfg).save_pretrained(str(w / "text_encoder"))
    c = load_components(w)
    assert c.prompt_embeds.shape == (1, 77, 16)
    ids = tok([""], padding="max_length", max_length=77, return_tensors="pt").input_ids
    assert ids[0, :3].tolist() == [1, 2, 0]  # BOS, EOS, then "!" padding
    with torch.no_grad():
        want = tr.CLIPTextModel.from_pretrained(str(w / "text_encoder"))(ids)[0]
    torch.testing.assert_close(c.prompt_embeds, want)


@pytest.mark.gpu
def test_cuda_graph_replay_equals_eager(comps) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    frames = torch.rand(4, 3, 8, 12)
    eager = StreamDiffVSRUpscaler(comps, "cuda", torch.float32, flow="raft", cuda_graphs=False).push(frames)
    up = StreamDiffVSRUpscaler(comps, "cuda", torch.float32, flow="raft", cuda_graphs=True)
    graphed = up.push(frames)
    assert up.cuda_graphs and len(up._graphs) == 1
    torch.testing.assert_close(graphed, eager, atol=1e-4, rtol=1e-4)
    up.reset()
    torch.testing.assert_close(up.push(frames), graphed)  # the graph is reused by the next stream


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_batch1_group_norm_matches_torch(fmt) -> None:
    from streamvsr.pipeline.streamdiffvsr import group_norm_b1

    g = torch.Generator().manual_seed(0)
    x = (torch.randn(1, 32, 9, 11, generator=g) * 3 + 5).contiguous(memory_format=fmt)
    w, b = torch.randn(32, generator=g), torch.randn(32, generator=g)
    torch.testing.assert_close(group_norm_b1(x, 8, w, b, 1e-5), F.group_norm(x, 8, w, b, 1e-5), atol=1e-4, rtol=1e-4)
    xb = x.bfloat16()
    got = group_norm_b1(xb, 8, w.bfloat16(), b.bfloat16(), 1e-5).float()
    torch.testing.assert_close(got, F.group_norm(xb.float(), 8, w, b, 1e-5), atol=0.05, rtol=0.02)


def test_fast_group_norm_keeps_keys_and_results(comps) -> None:
    from streamvsr.pipeline.streamdiffvsr import use_fast_group_norm

    c = build_components("tiny", seed=0)
    keys = list(c.unet.state_dict())
    frames = torch.rand(2, 3, 8, 12)
    plain = StreamDiffVSRUpscaler(c, "cpu", flow="raft").push(frames)
    assert use_fast_group_norm(c.unet) > 0 and use_fast_group_norm(c.controlnet) > 0
    assert list(c.unet.state_dict()) == keys
    fast = StreamDiffVSRUpscaler(c, "cpu", flow="raft").push(frames)
    torch.testing.assert_close(fast, plain, atol=1e-4, rtol=1e-4)


@pytest.mark.gpu
def test_batch1_group_norm_on_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from streamvsr.pipeline.streamdiffvsr import group_norm_b1

    x = torch.randn(1, 256, 90, 160, device="cuda") * 2 + 1
    w, b = torch.randn(256, device="cuda"), torch.randn(256, device="cuda")
    want = F.group_norm(x, 32, w, b, 1e-5)
    for fmt in (torch.contiguous_format, torch.channels_last):
        xf = x.contiguous(memory_format=fmt)
        torch.testing.assert_close(group_norm_b1(xf, 32, w, b, 1e-5), want, atol=1e-4, rtol=1e-4)
        got = group_norm_b1(xf.bfloat16(), 32, w.bfloat16(), b.bfloat16(), 1e-5).float()
        torch.testing.assert_close(got, want, atol=0.05, rtol=0.02)
