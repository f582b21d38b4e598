"""Temporal tiny autoencoder: official key layout, TAESD equivalence without TPM, and the TPM maths."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from streamvsr.models.sdvsr_decoder import TAEConfig, TemporalAutoencoderTiny, TemporalBlock

TINY = TAEConfig(encoder_block_out_channels=(8, 8, 8), decoder_block_out_channels=(8, 8, 8))


pytestmark = pytest.mark.usefixtures("one_torch_thread_module")


def expected_keys(c: int = 64) -> dict[str, tuple[int, ...]]:
    """The spec's layer table (section 1.7) as state-dict keys."""
    keys: dict[str, tuple[int, ...]] = {}

    def conv(p: str, cin: int, cout: int, bias: bool = True) -> None:
        keys[f"{p}.weight"] = (cout, cin, 3, 3)
        if bias:
            keys[f"{p}.bias"] = (cout,)

    def block(p: str) -> None:
        for i in (0, 2, 4):
            conv(f"{p}.conv.{i}", c, c)
        keys[f"{p}.alpha"] = ()
        for i in (0, 2):
            keys[f"{p}.temporal_processor.{i}.weight"] = (c, c, 3)
            keys[f"{p}.temporal_processor.{i}.bias"] = (c,)

    conv("encoder.layers.0", 3, c)
    for i in (1, 3, 4, 5, 7, 8, 9):
        block(f"encoder.layers.{i}")
    conv("encoder.layers.2", c, c, bias=False)
    conv("encoder.layers.6", c, c, bias=False)
    conv("encoder.layers.10", c, 4)
    conv("decoder.layers.0", 4, c)
    for i in (2, 3, 4, 7, 8, 9, 12):
        block(f"decoder.layers.{i}")
    conv("decoder.layers.6", c, c, bias=False)
    conv("decoder.layers.11", c, c, bias=False)
    conv("decoder.layers.13", c, 3)
    return keys


def test_official_layout_and_parameter_counts() -> None:
    vae = TemporalAutoencoderTiny(TAEConfig())
    got = {k: tuple(v.shape) for k, v in vae.state_dict().items()}
    assert got == expected_keys()
    enc = sum(p.numel() for p in vae.encoder.parameters())
    dec = sum(p.numel() for p in vae.decoder.parameters())
    tpm = sum(p.numel() for n, p in vae.decoder.named_parameters() if "temporal" in n or n.endswith("alpha"))
    assert round(enc / 1e6, 3) == 1.026 and round(dec / 1e6, 3) == 1.026  # spec section 1.1
    assert round(tpm / 1e6, 3) == 0.173
    assert (
        TAEConfig.from_dict({"latent_channels": 4, "block_out_channels": [64], "num_decoder_blocks": [3, 3, 1]}).scale
        == 4
    )


def test_without_tpm_it_is_diffusers_autoencoder_tiny() -> None:
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    ours = TemporalAutoencoderTiny(TINY).eval()
    ref = diffusers.AutoencoderTiny(
        encoder_block_out_channels=TINY.encoder_block_out_channels,
        decoder_block_out_channels=TINY.decoder_block_out_channels,
        num_encoder_blocks=TINY.num_encoder_blocks,
        num_decoder_blocks=TINY.num_decoder_blocks,
    ).eval()
    plain = {k: v for k, v in ours.state_dict().items() if "temporal_processor" not in k and not k.endswith("alpha")}
    ref.load_state_dict(plain, strict=True)
    z = torch.randn(1, 4, 6, 5) * 2
    x = torch.rand(1, 3, 24, 20) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(ours.decode(z), ref.decoder(z))
        torch.testing.assert_close(ours.encode(x), ref.encoder(x))  # (x+1)/2 rescale inside
        # TPM features are taken on the *raw* [-1, 1] image: the first block's output of layers 0-1
        torch.testing.assert_close(ours.features(x)[-1], ref.encoder.layers[:2](x))


def _identity_conv1d(conv: torch.nn.Conv1d, tap: int = 1) -> None:
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        conv.weight[:, :, tap] = torch.eye(conv.weight.shape[0])


@pytest.mark.parametrize("alpha", [1.0, 0.0, 0.3])
def test_tpm_mixes_current_and_previous_pooled_features(alpha: float) -> None:
    torch.manual_seed(1)
    blk = TemporalBlock(4, 4, "relu").eval()
    _identity_conv1d(blk.temporal_processor[0])
    _identity_conv1d(blk.temporal_processor[2])
    blk.alpha.data.fill_(alpha)
    x = torch.rand(1, 4, 12, 16)
    prev = torch.rand(1, 4, 12, 16)
    with torch.no_grad():
        f = blk.conv(x)
        # identity processor on S >= 0 -> T = ReLU(S); G = alpha*pool(F)+ (1-alpha)*pool(P), upsampled
        pooled = alpha * F.avg_pool2d(f, 4).clamp_min(0) + (1 - alpha) * F.avg_pool2d(prev, 4)
        g = F.interpolate(pooled, size=(12, 16), mode="bilinear", align_corners=False)
        want = torch.relu(f + 0.1 * g + x)
        torch.testing.assert_close(blk(x, prev), want)
        torch.testing.assert_close(blk(x), torch.relu(f + x))


def test_tpm_sequence_is_raster_order_with_one_seam() -> None:
    """Conv1d runs over [pool(F) raster, pool(P) raster]: a +1 shift makes G's last pixel = pool(P)[0]."""
    torch.manual_seed(2)
    blk = TemporalBlock(2, 2, "relu").eval()
    _identity_conv1d(blk.temporal_processor[0], tap=2)  # out[t] = in[t + 1]
    _identity_conv1d(blk.temporal_processor[2], tap=1)
    blk.alpha.data.fill_(1.0)
    f = torch.rand(1, 2, 8, 12)
    prev = torch.rand(1, 2, 8, 12)
    with torch.no_grad():
        t = blk.tpm(f, prev)  # (1, 2, 8, 12) upsampled from (2, 3)
        pooled_p = F.avg_pool2d(prev, 4)
        pooled_f = F.avg_pool2d(f, 4)
        # the (2, 3) grid before upsampling, recomputed from the pooled sequence
        s = torch.cat([pooled_f.flatten(2), pooled_p.flatten(2)], dim=2)
        direct = blk.temporal_processor(s)[..., :6].view(1, 2, 2, 3)
    torch.testing.assert_close(direct[0, :, 1, 2], pooled_p[0, :, 0, 0])  # the seam
    torch.testing.assert_close(direct[0, :, 0, 0], pooled_f[0, :, 0, 1])  # raster neighbour
    up = F.interpolate(direct, size=(8, 12), mode="bilinear", align_corners=False)
    torch.testing.assert_close(t, up)


def test_decode_with_features_pairs_reversed_encoder_blocks() -> None:
    torch.manual_seed(3)
    vae = TemporalAutoencoderTiny(TINY).eval()
    prev = torch.rand(1, 3, 32, 24) * 2 - 1
    z = torch.randn(1, 4, 8, 6)
    with torch.no_grad():
        feats = vae.features(prev)
        assert [f.shape[-1] for f in feats] == [6, 6, 6, 12, 12, 12, 24]
        plain = vae.decode(z)
        temporal = vae.decode(z, feats)
        assert plain.shape == temporal.shape == (1, 3, 32, 24)
        assert not torch.allclose(plain, temporal)
        for m in vae.decoder.modules():
            if isinstance(m, TemporalBlock):
                for p in m.temporal_processor.parameters():
                    p.zero_()
        torch.testing.assert_close(vae.decode(z, feats), plain)  # G = 0 -> plain TAESD decode
    with pytest.raises(ValueError):
        vae.decode(z, feats[:3])
