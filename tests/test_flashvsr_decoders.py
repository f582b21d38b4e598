"""TCDecoder and Wan VAE decoder: official keys/param counts (meta), streaming == all at once, alignment."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from streamvsr.models.flashvsr.config import TCDecoderConfig, WanVAEDecoderConfig
from streamvsr.models.flashvsr.tcdecoder import TCDecoder, make_tc_condition, tc_condition_unshuffle
from streamvsr.models.flashvsr.wan_vae import WAN_LATENT_MEAN, WAN_LATENT_STD, WanVAEDecoder

TC_TINY = TCDecoderConfig(channels=(8, 8, 4, 4))
# float64 comparisons of streamed against whole decodes allow a relative 1e-9: with 16 cores (the GPU machine) oneDNN
# sums a convolution of a different batch size in another order (1e-10 relative seen there); a streaming error is
# of the order of the values
VAE_TINY = WanVAEDecoderConfig(dim=4, dim_mult=(1, 2, 2, 2), num_res_blocks=1)


def _meta_shapes(module_fn) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in module_fn().state_dict().items()}


def _randomise(m: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * (0.3 if p.ndim > 1 else 0.1))
            if p.ndim == 4 and p.shape[-3:] == (1, 1, 1) or p.ndim == 3 and p.shape[-2:] == (1, 1):
                p.add_(1.0)  # RMS gammas around 1
    return m


# ------------------------------------------------------------------------------------------ TCDecoder
def test_tcdecoder_official_keys_and_param_count() -> None:
    shapes = _meta_shapes(lambda: TCDecoder(TCDecoderConfig()))
    assert len(shapes) == 66
    assert sum(torch.Size(s).numel() for s in shapes.values()) == 45_338_371
    expected = {
        "decoder.1.weight": (512, 784, 3, 3),
        "decoder.1.bias": (512,),
        "decoder.3.weight": (512, 512, 3, 3),
        "decoder.9.conv.weight": (512, 512, 1, 1),
        "decoder.10.weight": (256, 512, 3, 3),
        "decoder.15.conv.weight": (512, 256, 1, 1),
        "decoder.16.weight": (128, 256, 3, 3),
        "decoder.21.conv.weight": (256, 128, 1, 1),
        "decoder.22.weight": (128, 128, 3, 3),
        "decoder.24.weight": (128, 128, 3, 3),
        "decoder.26.weight": (3, 128, 3, 3),
        "decoder.26.bias": (3,),
    }
    for width, blocks in ((512, (5, 6, 7)), (256, (11, 12, 13)), (128, (17, 18, 19))):
        for b in blocks:
            expected[f"decoder.{b}.conv.0.weight"] = (width, 2 * width, 3, 3)
            expected[f"decoder.{b}.conv.0.bias"] = (width,)
            for j in (2, 4):
                expected[f"decoder.{b}.conv.{j}.weight"] = (width, width, 3, 3)
                expected[f"decoder.{b}.conv.{j}.bias"] = (width,)
    assert shapes == expected


def test_tc_condition_alignment_and_channel_order() -> None:
    lr = torch.rand(1, 3, 5, 16, 16)  # 4T-3 frames, T = 2
    al = make_tc_condition(lr, first=True)
    assert al.shape[2] == 8
    for i in range(4):  # latent 0 pairs with [f0]*4, latent 1 with frames 1..4
        torch.testing.assert_close(al[:, :, i], lr[:, :, 0])
    torch.testing.assert_close(al[:, :, 4:], lr[:, :, 1:])
    with pytest.raises(ValueError):
        make_tc_condition(lr, first=False)
    c = tc_condition_unshuffle(al)
    assert c.shape == (1, 768, 2, 2, 2)
    for ch, dt, dy, dx, t, i, j in [(0, 0, 0, 0, 0, 0, 0), (2, 3, 7, 1, 1, 1, 0), (1, 1, 2, 5, 1, 0, 1)]:
        assert c[0, ch * 256 + dt * 64 + dy * 8 + dx, t, i, j] == al[0, ch, 4 * t + dt, 8 * i + dy, 8 * j + dx]


def _tc_inputs(t: int, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lat = torch.randn(1, 16, t, 2, 3, generator=g, dtype=torch.float64)
    lr = torch.rand(1, 3, 4 * t - 3, 16, 24, generator=g, dtype=torch.float64) * 2 - 1
    return lat, lr


def test_tcdecoder_streaming_equals_whole() -> None:
    m = _randomise(TCDecoder(TC_TINY).double(), 0)
    lat, lr = _tc_inputs(5)
    whole = m(lat, lr)
    assert whole.shape == (1, 3, 4 * 5 - 3, 16, 24)
    al = make_tc_condition(lr, first=True)
    # chunk by chunk: 1 + 2 + 2 latents, with the streaming memory and a single trim
    m.reset()
    parts = [
        m.decode(lat[:, :, 0:1], lr[:, :, 0:1]),
        m.decode(lat[:, :, 1:3], al[:, :, 4:12]),
        m.decode(lat[:, :, 3:5], al[:, :, 12:20], latents_per_pass=None),
    ]
    assert [p.shape[2] for p in parts] == [1, 8, 8]
    torch.testing.assert_close(torch.cat(parts, dim=2), whole, rtol=1e-9, atol=1e-10)
    # one call, one latent per pass
    m.reset()
    torch.testing.assert_close(m.decode(lat, lr, latents_per_pass=1), whole, rtol=1e-9, atol=1e-10)
    # memory matters: decoding chunk 2 from a fresh state differs
    m.reset()
    fresh = m.decode(lat[:, :, 1:3], al[:, :, 4:12])
    assert fresh.shape[2] == 5
    assert (fresh - whole[:, :, 4:9]).abs().max() > 1e-6


def test_tcdecoder_uses_condition_and_is_differentiable() -> None:
    m = _randomise(TCDecoder(TC_TINY).double(), 1)
    lat, lr = _tc_inputs(2)
    lr = lr.requires_grad_(True)
    out = m(lat, lr)
    out.sum().backward()
    assert lr.grad is not None and lr.grad.abs().sum() > 0
    # untrimmed output has 4T frames; the trim removes exactly the first 3
    with torch.no_grad():
        full = m(lat, lr, trim=False)
    assert full.shape[2] == 8
    torch.testing.assert_close(full[:, :, 3:], out.detach())


def test_tcdecoder_identity_convs_are_dirac() -> None:
    m = TCDecoder(TC_TINY)
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(m.decoder[3](x), x)


# ------------------------------------------------------------------------------------------ Wan VAE
def test_vae_official_keys_and_param_count() -> None:
    shapes = _meta_shapes(lambda: WanVAEDecoder(WanVAEDecoderConfig()))
    assert sum(torch.Size(s).numel() for s in shapes.values()) == 73_295_603
    assert all(k.startswith(("conv2.", "decoder.")) for k in shapes)
    spot = {
        "conv2.weight": (16, 16, 1, 1, 1),
        "decoder.conv1.weight": (384, 16, 3, 3, 3),
        "decoder.middle.0.residual.0.gamma": (384, 1, 1, 1),
        "decoder.middle.2.residual.6.weight": (384, 384, 3, 3, 3),
        "decoder.middle.1.norm.gamma": (384, 1, 1),
        "decoder.middle.1.to_qkv.weight": (1152, 384, 1, 1),
        "decoder.middle.1.proj.weight": (384, 384, 1, 1),
        "decoder.upsamples.3.resample.1.weight": (192, 384, 3, 3),
        "decoder.upsamples.3.time_conv.weight": (768, 384, 3, 1, 1),
        "decoder.upsamples.4.residual.2.weight": (384, 192, 3, 3, 3),
        "decoder.upsamples.4.shortcut.weight": (384, 192, 1, 1, 1),
        "decoder.upsamples.7.time_conv.weight": (768, 384, 3, 1, 1),
        "decoder.upsamples.10.residual.6.weight": (192, 192, 3, 3, 3),
        "decoder.upsamples.11.resample.1.weight": (96, 192, 3, 3),
        "decoder.upsamples.14.residual.6.weight": (96, 96, 3, 3, 3),
        "decoder.head.0.gamma": (96, 1, 1, 1),
        "decoder.head.2.weight": (3, 96, 3, 3, 3),
    }
    for k, s in spot.items():
        assert shapes[k] == s, k
    assert not any(re.match(r"decoder\.upsamples\.11\.time_conv", k) for k in shapes)
    assert max(int(k.split(".")[2]) for k in shapes if k.startswith("decoder.upsamples.")) == 14


def _vae() -> WanVAEDecoder:
    return _randomise(WanVAEDecoder(VAE_TINY).double(), 2)


def test_vae_frame_counts_and_streaming_equals_whole() -> None:
    m = _vae()
    g = torch.Generator().manual_seed(4)
    lat = torch.randn(1, 16, 4, 2, 3, generator=g, dtype=torch.float64)
    m.reset()
    whole = m.decode(lat)
    assert whole.shape == (1, 3, 1 + 4 * 3, 16, 24)
    assert whole.abs().max() <= 1
    m.reset()
    parts = [m.decode(lat[:, :, :1]), m.decode(lat[:, :, 1:3]), m.decode(lat[:, :, 3:])]
    assert [p.shape[2] for p in parts] == [1, 8, 4]
    torch.testing.assert_close(torch.cat(parts, dim=2), whole, rtol=0, atol=1e-10)
    m.reset()
    torch.testing.assert_close(m.decode(lat, per_latent=False), whole, rtol=0, atol=1e-10)
    # forward() is a fresh stream; the state carries between decode calls (a fresh stream differs)
    torch.testing.assert_close(m(lat), whole, rtol=0, atol=1e-10)
    m.reset()
    fresh = m.decode(lat[:, :, 1:3])
    assert fresh.shape[2] == 5
    assert (fresh - whole[:, :, 4:9]).abs().max() > 1e-6


def test_vae_is_causal_and_unnormalises() -> None:
    m = _vae()
    g = torch.Generator().manual_seed(5)
    lat = torch.randn(1, 16, 3, 2, 2, generator=g, dtype=torch.float64)
    lat2 = lat.clone()
    lat2[:, :, 2] += 1.0
    a, b = m(lat), m(lat2)
    torch.testing.assert_close(a[:, :, :5], b[:, :, :5], rtol=0, atol=0)  # frames of latents 0, 1 unchanged
    assert (a[:, :, 5:] - b[:, :, 5:]).abs().max() > 0
    assert m.latent_mean.flatten().tolist() == pytest.approx(WAN_LATENT_MEAN)
    assert m.latent_std.flatten().tolist() == pytest.approx(WAN_LATENT_STD)
    # Un-normalisation: feeding (z_raw - mean) / std equals a decoder without the mean/std step.
    z_raw = torch.randn(1, 16, 2, 2, 2, generator=g, dtype=torch.float64)
    ref = _vae()
    ref.latent_mean.zero_()
    ref.latent_std.fill_(1.0)
    torch.testing.assert_close(m((z_raw - m.latent_mean) / m.latent_std), ref(z_raw), rtol=1e-9, atol=1e-9)


def test_tcdecoder_lq_residual_starts_at_the_condition_and_streams() -> None:
    cfg = TCDecoderConfig(channels=(8, 8, 4, 4), lq_residual=True)
    lat, lr = _tc_inputs(3)
    fresh = TCDecoder(cfg).double()
    al = make_tc_condition(lr, first=True)
    # zero-initialised last conv: the output is exactly the (aligned, trimmed) bicubic condition
    torch.testing.assert_close(fresh(lat, lr), al[:, :, 3:], rtol=0, atol=0)
    m = _randomise(TCDecoder(cfg).double(), 2)
    whole = m(lat, lr)
    assert (whole - al[:, :, 3:]).abs().max() > 1e-3  # the stack adds detail once trained
    m.reset()
    parts = [m.decode(lat[:, :, 0:1], lr[:, :, 0:1]), m.decode(lat[:, :, 1:3], al[:, :, 4:12])]
    torch.testing.assert_close(torch.cat(parts, dim=2), whole, rtol=1e-9, atol=1e-10)
    with pytest.raises(ValueError):
        TCDecoder(TCDecoderConfig(channels=(8, 8, 4, 4), cond_channels=0, lq_residual=True))


def test_tcdecoder_config_from_older_files() -> None:
    d = {"channels": [8, 8, 4, 4], "latent_channels": 16, "cond_channels": 768, "time_strides": [1, 2, 2]}
    assert TCDecoderConfig.from_dict(d) == TCDecoderConfig(channels=(8, 8, 4, 4))
    assert TCDecoderConfig.from_dict({**d, "lq_residual": True}).lq_residual
    with pytest.raises(ValueError):
        TCDecoderConfig.from_dict({**d, "bogus": 1})


def test_tcdecoder_bilinear_upsampling() -> None:
    """Same weights as the nearest decoder (no new parameters), other output, same streaming behaviour."""
    near = _randomise(TCDecoder(TC_TINY).double(), 3)
    bil = TCDecoder(dataclasses.replace(TC_TINY, upsample="bilinear")).double()
    bil.load_state_dict(near.state_dict())  # strict: the same keys and shapes
    lat, lr = _tc_inputs(3)
    whole = bil(lat, lr)
    assert whole.shape == near(lat, lr).shape and (whole - near(lat, lr)).abs().max() > 1e-6
    bil.reset()
    al = make_tc_condition(lr, first=True)
    parts = [bil.decode(lat[:, :, 0:1], lr[:, :, 0:1]), bil.decode(lat[:, :, 1:3], al[:, :, 4:12])]
    torch.testing.assert_close(torch.cat(parts, dim=2), whole, rtol=1e-9, atol=1e-10)
    assert TCDecoderConfig.from_dict({**dataclasses.asdict(TC_TINY), "upsample": "bilinear"}).upsample == "bilinear"
    with pytest.raises(ValueError):
        TCDecoder(dataclasses.replace(TC_TINY, upsample="bicubic"))


@pytest.mark.parametrize("upsample", ["nearest", "bilinear"])
def test_tcdecoder_grows_frames_before_upsampling_with_the_same_result(upsample: str) -> None:
    """grow_first (the default) runs each TGrow before the x2 upsampling in front of it: the same function as the
    checkpoint's layer order (a 1x1 convolution without bias commutes with both upsamplings), streamed too."""
    m = _randomise(TCDecoder(dataclasses.replace(TC_TINY, upsample=upsample)).double(), 4)
    lat, lr = _tc_inputs(3)
    assert m.grow_first
    fast = m(lat, lr)
    m.grow_first = False
    ref = m(lat, lr)
    torch.testing.assert_close(fast, ref, rtol=1e-9, atol=1e-8)  # float64 rounding of another summation order
    al = make_tc_condition(lr, first=True)
    outs = []
    for grow_first in (True, False):
        m.grow_first = grow_first
        m.reset()
        outs.append(torch.cat([m.decode(lat[:, :, 0:1], lr[:, :, 0:1]), m.decode(lat[:, :, 1:3], al[:, :, 4:12])], 2))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-9, atol=1e-8)
    torch.testing.assert_close(outs[0], ref, rtol=1e-9, atol=1e-8)


@pytest.mark.parametrize("grow_first", [True, False])
def test_tcdecoder_tail_in_frame_slices_is_the_same_function(grow_first: bool) -> None:
    """tail_frames runs the per-frame tail (last upsampling and full-resolution convolutions) a few frames at a
    time: frame for frame the same output, whole and streamed (with the MemBlock memories)."""
    m = _randomise(TCDecoder(TC_TINY).double(), 5)
    m.grow_first = grow_first
    lat, lr = _tc_inputs(3)
    al = make_tc_condition(lr, first=True)
    ref = m(lat, lr)
    m.reset()
    ref_stream = torch.cat([m.decode(lat[:, :, 0:1], lr[:, :, 0:1]), m.decode(lat[:, :, 1:3], al[:, :, 4:12])], 2)
    for n in (1, 3):
        m.tail_frames = n
        torch.testing.assert_close(m(lat, lr), ref, rtol=0, atol=1e-12)
        m.reset()
        got = torch.cat([m.decode(lat[:, :, 0:1], lr[:, :, 0:1]), m.decode(lat[:, :, 1:3], al[:, :, 4:12])], 2)
        torch.testing.assert_close(got, ref_stream, rtol=0, atol=1e-12)
    # the slices really are smaller: the full-resolution convolution sees n frames per call
    seen = []
    conv = m.decoder[-1]
    h = conv.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[0]))
    m.tail_frames = 1
    m(lat, lr)
    h.remove()
    assert seen and max(seen) == 1
