"""The TCDecoder tail's fused ops: conv + ReLU as one op and the 3x3 few-output convolution by taps, against
F.conv2d on the CPU (float64), inside the decoder (whole and streamed), traced by torch.compile; CUDA kernels."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from streamvsr.models.flashvsr.config import TCDecoderConfig
from streamvsr.models.flashvsr.fused import conv2d_relu, conv3x3_by_taps
from streamvsr.models.flashvsr.tcdecoder import TCDecoder, make_tc_condition

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("channels_last", [False, True])
def test_conv3x3_by_taps_equals_conv2d(channels_last: bool) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 16, 9, 13, generator=g, dtype=torch.float64)
    w = torch.randn(3, 16, 3, 3, generator=g, dtype=torch.float64)
    b = torch.randn(3, generator=g, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
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


def test_tcdecoder_fused_tail_is_the_same_function() -> None:
    """fused_conv_relu and out_by_taps give the decoder's output, whole and streamed; with gradients the
    reference layers run (the fused op has no backward)."""
    m = TCDecoder(TCDecoderConfig(channels=(8, 8, 4, 4))).double()
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
    lat = torch.randn(1, 16, 3, 4, 6, generator=g, dtype=torch.float64)
    lr = torch.rand(1, 3, 9, 32, 48, generator=g, dtype=torch.float64) * 2 - 1
    al = make_tc_condition(lr, first=True)
    calls = []
    m.decoder[-1].register_forward_hook(lambda mod, inp, out: calls.append(1))

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            whole = m(lat, lr)
            m.reset()
            streamed = torch.cat([m.decode(lat[:, :, :1], lr[:, :, :1]), m.decode(lat[:, :, 1:], al[:, :, 4:12])], 2)
        return whole, streamed

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


def test_fused_switches_default_off_and_keep_the_config() -> None:
    m = TCDecoder(TCDecoderConfig(channels=(8, 8, 4, 4)))
    assert not m.fused_conv_relu and not m.out_by_taps and not m.fused_memblocks


def test_pipeline_turns_the_tail_kernels_on_for_wide_decoders_only() -> None:
    from streamvsr.pipeline.flashvsr import _tail_kernels

    wide = TCDecoder(TCDecoderConfig(channels=(64, 64, 64, 64)))
    narrow = TCDecoder(TCDecoderConfig(channels=(24, 16, 12, 12)))
    assert _tail_kernels(wide) and wide.fused_conv_relu and wide.fused_memblocks and wide.out_by_taps
    assert not _tail_kernels(narrow) and not (narrow.fused_conv_relu or narrow.fused_memblocks or narrow.out_by_taps)
    assert not _tail_kernels(torch.nn.Conv2d(1, 1, 1))  # other decoders: untouched
