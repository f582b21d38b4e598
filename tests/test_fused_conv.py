"""The TCDecoder tail's fused ops: conv + ReLU as one op, the 3x3 few-output convolution by taps and the nearest
x2 upsampling + 3x3 convolution as one sub-pixel convolution, against F.conv2d on the CPU (float64), inside the
decoder (whole and streamed), traced by torch.compile; CUDA kernels."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from streamvsr.models.flashvsr.config import TCDecoderConfig
from streamvsr.models.flashvsr.fused import conv2d_relu, conv3x3_by_taps, nearest2x_conv3x3
from streamvsr.models.flashvsr.tcdecoder import TCDecoder, make_tc_condition

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _conv_inputs(
    seed: int, x_shape: tuple[int, ...], outputs: int, channels_last: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """float64 input (channels-last or not), a random 3x3 weight with ``outputs`` outputs and its bias."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*x_shape, generator=g, dtype=torch.float64)
    w = torch.randn(outputs, x_shape[1], 3, 3, generator=g, dtype=torch.float64)
    b = torch.randn(outputs, generator=g, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, w, b


@pytest.mark.parametrize("channels_last", [False, True])
def test_conv3x3_by_taps_equals_conv2d(channels_last: bool) -> None:
    x, w, b = _conv_inputs(0, (3, 16, 9, 13), 3, channels_last)
    torch.testing.assert_close(conv3x3_by_taps(x, w, b), F.conv2d(x, w, b, padding=1), rtol=0, atol=1e-12)
    torch.testing.assert_close(conv3x3_by_taps(x, w, None), F.conv2d(x, w, padding=1), rtol=0, atol=1e-12)
    # every tap counts: a weight change at one border tap changes the border pixels
    w2 = w.clone()
    w2[1, 5, 0, 2] += 1
    assert (conv3x3_by_taps(x, w2, b) - F.conv2d(x, w, b, padding=1)).abs().max() > 0.1
    with pytest.raises(ValueError):
        conv3x3_by_taps(x, torch.zeros(3, 16, 5, 5, dtype=torch.float64), None)
    # float32 input: float32 output of the same function
    y = conv3x3_by_taps(x.float(), w.float(), b.float())
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, F.conv2d(x, w, b, padding=1).float(), rtol=0, atol=1e-4)


@pytest.mark.parametrize("channels_last", [False, True])
def test_conv2d_relu_reference_and_layout(channels_last: bool) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 8, 7, 10, generator=g)
    w = torch.randn(6, 8, 3, 3, generator=g)
    b = torch.randn(6, generator=g)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    for bias in (b, None):
        y = conv2d_relu(x, w, bias, 1)
        torch.testing.assert_close(y, F.relu(F.conv2d(x, w, bias, padding=1)), rtol=0, atol=0)
        assert y.is_contiguous(memory_format=torch.channels_last) == channels_last
    compiled = torch.compile(lambda a: conv2d_relu(a, w, b, 1) * 2, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), 2 * F.relu(F.conv2d(x, w, b, padding=1)), rtol=0, atol=0)


@pytest.mark.parametrize("channels_last", [False, True])
def test_nearest2x_conv3x3_equals_upsample_then_conv(channels_last: bool) -> None:
    x, w, b = _conv_inputs(3, (2, 6, 5, 7), 4, channels_last)
    up = F.interpolate(x, scale_factor=2, mode="nearest")
    for bias in (b, None):
        ref = F.conv2d(up, w, bias, padding=1)
        torch.testing.assert_close(nearest2x_conv3x3(x, w, bias), ref, rtol=0, atol=1e-12)
        torch.testing.assert_close(nearest2x_conv3x3(x, w, bias, relu=True), F.relu(ref), rtol=0, atol=1e-12)
    y = nearest2x_conv3x3(x, w, b)
    assert y.shape == (2, 4, 10, 14) and y.is_contiguous(memory_format=torch.channels_last) == channels_last
    # every tap counts, at the borders too: a change of one corner tap changes the output
    for t in ((0, 0), (0, 2), (2, 0), (2, 2), (1, 1)):
        w2 = w.clone()
        w2[1, 2, t[0], t[1]] += 1
        assert (nearest2x_conv3x3(x, w2, b) - F.conv2d(up, w, b, padding=1)).abs().max() > 0.1
    with pytest.raises(ValueError):
        nearest2x_conv3x3(x, torch.zeros(4, 6, 5, 5, dtype=torch.float64))
    compiled = torch.compile(lambda a: nearest2x_conv3x3(a, w, b, relu=True), backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), F.relu(F.conv2d(up, w, b, padding=1)), rtol=0, atol=1e-12)


def _random_decoder(seed: int) -> tuple[TCDecoder, torch.Tensor, torch.Tensor]:
    """A small float64 TCDecoder with random weights, 3 latents and their 9 LR frames."""
    m = TCDecoder(TCDecoderConfig(channels=(8, 8, 4, 4))).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
    lat = torch.randn(1, 16, 3, 4, 6, generator=g, dtype=torch.float64)
    lr = torch.rand(1, 3, 9, 32, 48, generator=g, dtype=torch.float64) * 2 - 1
    return m, lat, lr


def _whole_and_streamed(m: TCDecoder, lat: torch.Tensor, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoder's output in one stateless pass and streamed (one latent, then two), without gradients."""
    al = make_tc_condition(lr, first=True)
    with torch.no_grad():
        whole = m(lat, lr)
        m.reset()
        streamed = torch.cat([m.decode(lat[:, :, :1], lr[:, :, :1]), m.decode(lat[:, :, 1:], al[:, :, 4:12])], 2)
        m.reset()
    return whole, streamed


def test_tcdecoder_subpixel_upsampling_is_the_same_function() -> None:
    """subpixel_upsample gives the decoder's output, whole and streamed, alone and with the other fused kernels;
    no nearest upsampling runs; with gradients the reference layers run."""
    m, lat, lr = _random_decoder(4)
    ups = []
    for layer in m.decoder:
        if isinstance(layer, torch.nn.Upsample):
            layer.register_forward_hook(lambda mod, inp, out: ups.append(1))

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        return _whole_and_streamed(m, lat, lr)

    ref = run()
    assert len(ups) == 3 * 4  # three upsamplings, four passes (one whole, three streamed: a latent each)
    for fused, tail in ((False, None), (True, None), (True, 1)):  # tail 1: the last upsampling runs per frame
        m.subpixel_upsample = True
        m.fused_conv_relu = m.out_by_taps = m.fused_memblocks = fused
        m.tail_frames = tail
        ups.clear()
        for a, b in zip(run(), ref, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)  # float64, another summation order
        assert not ups
    m.grow_first, m.tail_frames = False, None  # the TGrow after the upsampling: the reference layers
    ups.clear()
    for a, b in zip(run(), ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)
    assert ups
    m.grow_first = True
    ups.clear()
    m(lat.requires_grad_(), lr).sum().backward()  # gradients: the reference layers
    assert ups and lat.grad is not None


def test_tcdecoder_fused_tail_is_the_same_function() -> None:
    """fused_conv_relu and out_by_taps give the decoder's output, whole and streamed; with gradients the
    reference layers run (the fused op has no backward)."""
    m, lat, lr = _random_decoder(2)
    calls = []
    m.decoder[-1].register_forward_hook(lambda mod, inp, out: calls.append(1))

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        return _whole_and_streamed(m, lat, lr)

    ref = run()
    assert calls
    m.fused_conv_relu = m.out_by_taps = m.fused_memblocks = True
    calls.clear()
    got = run()
    assert not calls  # the last convolution ran by taps, not as the module
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)  # float64, another summation order
    out = m(lat.requires_grad_(), lr)  # gradients: the reference layers
    out.sum().backward()
    assert calls and lat.grad is not None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cuda_tail_ops_match_the_reference(dtype: torch.dtype) -> None:
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(2, 64, 96, 176, device="cuda", generator=g).to(dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    w = (torch.randn(64, 64, 3, 3, device="cuda", generator=g) / 24).to(dtype)
    b = torch.randn(64, device="cuda", generator=g).to(dtype)
    ref = F.relu(F.conv2d(x.float(), w.float(), b.float(), padding=1))
    got = conv2d_relu(x, w, b, 1)
    assert got.is_contiguous(memory_format=torch.channels_last)
    err = (got.float() - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt()
    assert err < 5e-3, err
    w3 = (torch.randn(3, 64, 3, 3, device="cuda", generator=g) / 24).to(dtype)
    b3 = torch.randn(3, device="cuda", generator=g).to(dtype)
    ref3 = F.conv2d(x.float(), w3.float(), b3.float(), padding=1)
    for fn in (conv3x3_by_taps, torch.compile(conv3x3_by_taps)):
        got3 = fn(x, w3, b3)
        assert got3.dtype == dtype
        err = (got3.float() - ref3).pow(2).mean().sqrt() / ref3.pow(2).mean().sqrt()
        assert err < 5e-3, err
    refu = F.relu(F.conv2d(F.interpolate(x.float(), scale_factor=2), w.float(), b.float(), padding=1))
    for fn in (nearest2x_conv3x3, torch.compile(nearest2x_conv3x3)):
        gotu = fn(x, w, b, True)
        assert gotu.dtype == dtype and gotu.is_contiguous(memory_format=torch.channels_last)
        err = (gotu.float() - refu).pow(2).mean().sqrt() / refu.pow(2).mean().sqrt()
        assert err < 5e-3, err


def test_fused_switches_default_off_and_keep_the_config() -> None:
    m = TCDecoder(TCDecoderConfig(channels=(8, 8, 4, 4)))
    assert not m.fused_conv_relu and not m.out_by_taps and not m.fused_memblocks and not m.subpixel_upsample


def test_pipeline_turns_the_tail_kernels_on_for_wide_decoders_only() -> None:
    from streamvsr.pipeline.flashvsr import _tail_kernels

    wide = TCDecoder(TCDecoderConfig(channels=(64, 64, 64, 64)))
    narrow = TCDecoder(TCDecoderConfig(channels=(24, 16, 12, 12)))
    assert _tail_kernels(wide) and wide.fused_conv_relu and wide.fused_memblocks and wide.out_by_taps
    assert wide.subpixel_upsample
    assert not _tail_kernels(narrow) and not (narrow.fused_conv_relu or narrow.fused_memblocks or narrow.out_by_taps)
    assert not narrow.subpixel_upsample
    assert not _tail_kernels(torch.nn.Conv2d(1, 1, 1))  # other decoders: untouched
