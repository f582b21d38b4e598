"""LQ projector: shapes/keys, streaming == whole video, v1 vs v1.1 receptive field, unshuffle order."""

from __future__ import annotations

import pytest
import torch

from streamvsr.models.flashvsr.config import LQProjConfig
from streamvsr.models.flashvsr.lq_proj import LQProjector, pixel_unshuffle_2d

TINY = {"unshuffle": 4, "hidden1": 6, "hidden2": 8, "out_dim": 5}
H = W = 8  # -> 2x2 token grid
T = 4  # latents


def _proj(causal: bool, seed: int = 0) -> LQProjector:
    torch.manual_seed(seed)
    m = LQProjector(LQProjConfig(causal=causal, **TINY)).double()
    with torch.no_grad():  # non-trivial gammas
        m.norm1.gamma.uniform_(0.5, 1.5)
        m.norm2.gamma.uniform_(0.5, 1.5)
    return m


def _video(seed: int = 1, n: int = 1 + 4 * T) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, n, H, W, generator=g, dtype=torch.float64) * 2 - 1


def _stream(m: LQProjector, video: torch.Tensor) -> torch.Tensor:
    m.reset()
    assert m.step(video[:, :, :1]) is None
    outs = [m.step(video[:, :, 1 + 4 * t : 5 + 4 * t]) for t in range((video.shape[2] - 1) // 4)]
    return torch.cat(outs, dim=1)


def test_official_keys_and_param_count() -> None:
    with torch.device("meta"):
        sd = LQProjector(LQProjConfig()).state_dict()
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    assert shapes == {
        "conv1.weight": (2048, 768, 4, 3, 3),
        "conv1.bias": (2048,),
        "norm1.gamma": (2048, 1, 1, 1),
        "conv2.weight": (3072, 2048, 4, 3, 3),
        "conv2.bias": (3072,),
        "norm2.gamma": (3072, 1, 1, 1),
        "linear_layers.0.weight": (1536, 3072),
        "linear_layers.0.bias": (1536,),
    }
    assert sum(v.numel() for v in sd.values()) == 287_845_888


def test_pixel_unshuffle_channel_order() -> None:
    r = 4
    x = torch.arange(2 * 3 * 1 * 8 * 12, dtype=torch.float64).reshape(2, 3, 1, 8, 12)
    y = pixel_unshuffle_2d(x, r)
    assert y.shape == (2, 48, 1, 2, 3)
    for c, dy, dx, i, j in [(0, 0, 0, 0, 0), (1, 2, 3, 1, 2), (2, 3, 1, 0, 1)]:
        assert y[1, c * r * r + dy * r + dx, 0, i, j] == x[1, c, 0, i * r + dy, j * r + dx]


@pytest.mark.parametrize("causal", [False, True])
def test_streaming_equals_forward(causal: bool) -> None:
    m = _proj(causal)
    v = _video()
    whole = m(v)
    assert whole.shape == (1, T * (H // 4) * (W // 4), 5)
    torch.testing.assert_close(_stream(m, v), whole, rtol=0, atol=1e-12)
    # A first call carrying the warm-up frame plus clips, then a multi-clip call, gives the same tokens.
    m.reset()
    a = m.step(v[:, :, :5])
    b = m.step(v[:, :, 5:])
    torch.testing.assert_close(torch.cat([a, b], dim=1), whole, rtol=0, atol=1e-12)


def _changed_latents(m: LQProjector, clip: int) -> list[int]:
    v = _video()
    base = m(v).reshape(1, T, -1, 5)
    v2 = v.clone()
    v2[:, :, 1 + 4 * clip : 5 + 4 * clip] += 0.3
    pert = m(v2).reshape(1, T, -1, 5)
    return [t for t in range(T) if (pert[:, t] - base[:, t]).abs().max() > 1e-9]


def test_v1_buffer_has_no_inter_clip_state() -> None:
    m = _proj(causal=False)
    assert _changed_latents(m, 0) == [0]
    assert _changed_latents(m, 2) == [2]
    # The warm-up frame does not matter at all in v1.
    v = _video()
    v2 = v.clone()
    v2[:, :, 0] = 0.7
    torch.testing.assert_close(m(v2), m(v), rtol=0, atol=0)


def test_v11_causal_receptive_field_two_clips_back() -> None:
    m = _proj(causal=True)
    assert _changed_latents(m, 0) == [0, 1, 2]
    assert _changed_latents(m, 1) == [1, 2, 3]
    # The warm-up frame feeds the first latents (replicate padding / cache of f0).
    v = _video()
    v2 = v.clone()
    v2[:, :, 0] = 0.7
    diff = (m(v2) - m(v)).reshape(1, T, -1).abs().amax(dim=-1)[0]
    assert diff[0] > 1e-9 and diff[1] > 1e-9 and diff[3] == 0


def test_reset_restarts_stream_and_bad_frame_counts_raise() -> None:
    m = _proj(causal=True)
    v = _video()
    first = _stream(m, v)
    second = _stream(m, v)  # _stream resets
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    m.reset()
    with pytest.raises(ValueError):
        m.step(v[:, :, :4])  # the first call needs 1 + 4k frames
    m.reset()
    m.step(v[:, :, :1])
    with pytest.raises(ValueError):
        m.step(v[:, :, 1:4])
    with pytest.raises(ValueError):
        m(v[:, :, :4])


def test_forward_is_differentiable() -> None:
    m = _proj(causal=True)
    v = _video().requires_grad_(True)
    m(v).square().sum().backward()
    assert v.grad is not None and v.grad.abs().sum() > 0
    assert m.conv1.weight.grad is not None


@pytest.mark.parametrize(("kernel", "stride", "frames"), [((4, 3, 3), (2, 1, 1), 10), ((3, 1, 2), (1, 1, 1), 5)])
def test_conv3d_time_folded_equals_conv3d(kernel: tuple, stride: tuple, frames: int) -> None:
    from streamvsr.models.flashvsr.lq_proj import conv3d_time_folded

    torch.manual_seed(2)
    conv = torch.nn.Conv3d(5, 7, kernel, stride=stride).double()
    x = torch.randn(2, 5, frames, 6, 9, dtype=torch.float64)
    assert torch.allclose(conv3d_time_folded(conv, x), conv(x), atol=1e-12)
    with pytest.raises(ValueError, match="no padding"):
        conv3d_time_folded(torch.nn.Conv3d(5, 7, 3, padding=1), x)


@pytest.mark.parametrize("causal", [True, False])
def test_time_fold_gives_the_same_tokens(causal: bool) -> None:
    video = _video()
    ref = _stream(_proj(causal), video)
    folded = _proj(causal)
    folded.time_fold = True
    assert torch.allclose(_stream(folded, video), ref, atol=1e-12)
    assert torch.allclose(folded(video), _proj(causal)(video), atol=1e-12)
