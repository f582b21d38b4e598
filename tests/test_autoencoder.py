"""Causal video autoencoder: shapes, Wan2.1 frame bookkeeping, causality, normalisation, config."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from streamvsr.models.autoencoder import (
    AE_SIZES,
    AutoencoderConfig,
    VideoAutoencoder,
    get_ae_size,
    latent_to_frames,
    num_frames,
    num_latents,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(seed: int = 0, **overrides: object) -> VideoAutoencoder:
    torch.manual_seed(seed)
    cfg = dataclasses.replace(AE_SIZES["tiny"], **overrides)
    return VideoAutoencoder(cfg).eval()


def _video(frames: int, h: int = 16, w: int = 24, b: int = 2, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, frames, h, w, generator=g) * 2 - 1


@pytest.mark.parametrize("frames", [1, 5, 9, 17])
def test_shapes_and_bookkeeping(frames: int) -> None:
    m = _model()
    x = _video(frames)
    with torch.no_grad():
        z = m.encode(x)
        y = m.decode(z)
    k = (frames - 1) // 4
    assert z.shape == (2, 16, 1 + k, 2, 3)
    assert y.shape == x.shape
    assert num_latents(frames) == 1 + k
    assert num_frames(1 + k) == frames
    assert y.abs().max() <= 1.0


def test_latent_to_frames_covers_every_frame_once() -> None:
    assert list(latent_to_frames(0)) == [0]
    assert list(latent_to_frames(1)) == [1, 2, 3, 4]
    assert list(latent_to_frames(3)) == [9, 10, 11, 12]
    covered = [f for t in range(5) for f in latent_to_frames(t)]
    assert covered == list(range(num_frames(5)))


@pytest.mark.parametrize("frames", [0, 2, 4, 8])
def test_bad_frame_count_raises(frames: int) -> None:
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        num_latents(frames)
    if frames:
        with pytest.raises(ValueError):
            _model().encode(_video(frames))


def test_bad_spatial_size_raises() -> None:
    with pytest.raises(ValueError, match="multiples of 8"):
        _model().encode(_video(5, h=20))


def test_causality_encode_and_decode() -> None:
    """Changing frame 9 (latent 3 covers frames 9..12) changes nothing that comes before it."""
    m = _model()
    x = _video(17, b=1)
    x2 = x.clone()
    x2[:, :, 9] = -x2[:, :, 9]
    with torch.no_grad():
        z, z2 = m.encode(x), m.encode(x2)
        y, y2 = m.decode(z), m.decode(z2)
    assert torch.equal(z[:, :, :3], z2[:, :, :3])
    assert not torch.allclose(z[:, :, 3], z2[:, :, 3])
    assert torch.equal(y[:, :, :9], y2[:, :, :9])
    assert not torch.allclose(y[:, :, 9:13], y2[:, :, 9:13])


def test_decoder_causal_in_latents() -> None:
    m = _model()
    z = torch.randn(1, 16, 4, 2, 2, generator=torch.Generator().manual_seed(3))
    z2 = z.clone()
    z2[:, :, 2] += 1.0
    with torch.no_grad():
        y, y2 = m.decode(z), m.decode(z2)
    assert torch.equal(y[:, :, :5], y2[:, :, :5])  # latents 0, 1 -> frames 0..4
    assert not torch.allclose(y[:, :, 5:9], y2[:, :, 5:9])


def test_image_is_the_first_frame_of_a_clip() -> None:
    """Joint image/video: an image encodes exactly like frame 0 of a clip, and decodes alone."""
    m = _model()
    x = _video(9)
    with torch.no_grad():
        z_clip = m.encode(x)
        z_img = m.encode(x[:, :, :1])
        assert torch.equal(z_img, z_clip[:, :, :1])
        assert torch.equal(m.decode(z_img), m.decode(z_clip)[:, :, :1])


def test_latent_normalisation_round_trip() -> None:
    m = _model()
    x = _video(5)
    with torch.no_grad():
        mean, _ = m.encode_dist(x)
        mu = torch.linspace(-1, 1, 16)
        std = torch.linspace(0.5, 2, 16)
        m.set_latent_stats(mu, std)
        z = m.encode(x)
        expected = (mean - mu.view(1, -1, 1, 1, 1)) / std.view(1, -1, 1, 1, 1)
        torch.testing.assert_close(z, expected)
        torch.testing.assert_close(m.denormalize(z), mean)
        torch.testing.assert_close(m.decode(z, clamp=False), m.decode_raw(mean))
    assert "latent_mean" in m.state_dict() and "latent_std" in m.state_dict()


def test_sampling_and_forward() -> None:
    m = _model()
    x = _video(5)
    with torch.no_grad():
        assert torch.equal(m.encode(x), m.encode(x))
        assert not torch.equal(m.encode(x, sample=True), m.encode(x))
        recon, mean, logvar = m(x, sample=False)
    assert recon.shape == x.shape and logvar is not None and mean.shape == logvar.shape
    det = _model(variational=False)
    mean2, logvar2 = det.encode_dist(x)
    assert logvar2 is None and mean2.shape == mean.shape


def test_gradient_checkpointing_matches() -> None:
    x = _video(5)
    grads = []
    for ckpt in (False, True):
        m = _model().train()
        m.set_grad_checkpointing(ckpt)
        recon, _, _ = m(x, sample=False)
        recon.square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters()]))
    torch.testing.assert_close(grads[0], grads[1])


def test_config_round_trip_and_validation() -> None:
    for name, cfg in AE_SIZES.items():
        assert AutoencoderConfig.from_dict(cfg.to_dict()) == cfg
        assert get_ae_size(name) is cfg
    with pytest.raises(KeyError, match="known"):
        get_ae_size("huge")
    with pytest.raises(ValueError):
        AutoencoderConfig(spatial_factor=6)
    with pytest.raises(ValueError):
        AutoencoderConfig(enc_channels=(8, 8))
    with pytest.raises(ValueError, match="unknown"):
        AutoencoderConfig.from_dict({"bogus": 1})


def test_other_compression_factors() -> None:
    cfg = AutoencoderConfig(
        spatial_factor=4,
        temporal_factor=2,
        latent_channels=8,
        enc_channels=(8, 8),
        enc_blocks=(1, 1),
        dec_channels=(8, 8),
        dec_blocks=(1, 1),
    )
    m = VideoAutoencoder(cfg).eval()
    x = _video(5, h=16, w=16, b=1)
    with torch.no_grad():
        z = m.encode(x)
        assert z.shape == (1, 8, 3, 4, 4)
        assert m.decode(z).shape == x.shape
