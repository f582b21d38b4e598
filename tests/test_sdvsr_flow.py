"""ops/flow: the BasicSR-style warp, flow resizing, OpenCV DIS and the flow estimator's options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamvsr.models.raft import RAFT, RAFT_TINY
from streamvsr.ops.flow import FlowEstimator, dis_flow, epe, resize_flow, warp, warp_error

pytestmark = pytest.mark.usefixtures("one_torch_thread_module")


def _bilinear_ref(img: np.ndarray, px: float, py: float) -> np.ndarray:
    """Bilinear sample of (C, H, W) at pixel (px, py), zero outside (grid_sample zeros padding)."""
    c, h, w = img.shape
    x0, y0 = int(np.floor(px)), int(np.floor(py))
    out = np.zeros(c)
    for yy, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
        for xx, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
            if 0 <= xx < w and 0 <= yy < h:
                out += wy * wx * img[:, yy, xx]
    return out


def test_warp_matches_the_official_grid_quirk() -> None:
    """Sample point = (p + flow) * size / (size - 1) - 0.5 (normalised by size-1, align_corners=False)."""
    rng = np.random.default_rng(0)
    h, w = 7, 9
    img = rng.standard_normal((2, h, w))
    flow = rng.standard_normal((2, h, w)) * 2
    got = warp(torch.from_numpy(img)[None], torch.from_numpy(flow)[None])[0].numpy()
    for y in range(h):
        for x in range(w):
            px = (x + flow[0, y, x]) * w / (w - 1) - 0.5
            py = (y + flow[1, y, x]) * h / (h - 1) - 0.5
            np.testing.assert_allclose(got[:, y, x], _bilinear_ref(img, px, py), atol=1e-6)


def test_warp_moves_content_along_backward_flow() -> None:
    x = torch.zeros(1, 1, 32, 32)
    x[..., 10, 12] = 1.0
    flow = torch.zeros(1, 2, 32, 32)
    flow[:, 0] = 4.0  # cur(p) = prev(p + 4 in x)
    y = warp(x, flow)
    # the peak lands near x = 12 - 4 (within the quirk's sub-pixel stretch)
    assert abs(int(y[0, 0, 10].argmax()) - 8) <= 1
    with pytest.raises(ValueError):
        warp(x, flow[..., :16])


def test_resize_flow_scales_vectors() -> None:
    flow = torch.stack([torch.full((6, 8), 1.0), torch.full((6, 8), -2.0)])[None]
    up = resize_flow(flow, (24, 16))
    assert up.shape == (1, 2, 24, 16)
    torch.testing.assert_close(up[:, 0], torch.full((1, 24, 16), 2.0))
    torch.testing.assert_close(up[:, 1], torch.full((1, 24, 16), -8.0))
    assert resize_flow(flow, (6, 8)) is flow


def _texture(h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, h // 4, w // 4, generator=g)
    return torch.nn.functional.interpolate(x, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1) * 2 - 1


def test_dis_recovers_a_translation_with_backward_sign() -> None:
    prev = _texture(96, 128)
    cur = torch.roll(prev, shifts=(2, 3), dims=(2, 3))  # cur(p) = prev(p - (3, 2))
    f = dis_flow(cur, prev, "medium")
    assert f.shape == (1, 2, 96, 128)
    inner = f[..., 16:-16, 16:-16]
    assert abs(float(inner[:, 0].median()) + 3) < 0.5
    assert abs(float(inner[:, 1].median()) + 2) < 0.5
    assert warp_error(cur, prev, f, margin=16) < warp_error(cur, prev, torch.zeros_like(f), margin=16)
    with pytest.raises(ValueError, match="preset"):
        dis_flow(cur, prev, "slowest")


@pytest.mark.parametrize("resolution, flow_hw", [(1.0, (40, 56)), (0.5, (20, 28)), ("lr", (10, 14))])
def test_estimator_sizes(resolution, flow_hw) -> None:
    raft = RAFT(RAFT_TINY).eval()
    est = FlowEstimator("raft", raft, scale=4, resolution=resolution, iters=2)
    lr = torch.rand(1, 3, 10, 14) * 2 - 1
    assert est.flow_size((10, 14)) == flow_hw
    out = est(lr, lr.roll(1, dims=3))  # tiny inputs are padded for RAFT and cropped back
    assert out.shape == (1, 2, 40, 56) and torch.isfinite(out).all()
    dis = FlowEstimator("dis", scale=4, resolution=resolution)
    assert dis(lr, lr).shape == (1, 2, 40, 56)


def test_estimator_rejects_bad_options() -> None:
    with pytest.raises(ValueError):
        FlowEstimator("raft", None)
    with pytest.raises(ValueError):
        FlowEstimator("farneback")
    with pytest.raises(ValueError):
        FlowEstimator("dis", resolution=1.5)


def test_epe() -> None:
    a = torch.zeros(1, 2, 4, 4)
    b = a.clone()
    b[:, 0] = 3.0
    b[:, 1] = 4.0
    assert epe(a, b) == pytest.approx(5.0)
