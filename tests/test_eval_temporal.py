"""eval.temporal: DIS flow, tOF and warping error on synthetic motion."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from streamvsr.eval import temporal as T


def _scene(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    big = ndimage.gaussian_filter(rng.normal(size=(h + 40, w + 40, 3)), sigma=(2.5, 2.5, 0))
    big = (big - big.min()) / (big.max() - big.min())
    return np.round(255 * big).astype(np.uint8)


def _frame(scene: np.ndarray, dx: int, h: int = 96, w: int = 128) -> np.ndarray:
    # a camera pan: the content moves left by dx pixels
    return np.ascontiguousarray(scene[20 : 20 + h, 20 + dx : 20 + dx + w])


def test_dis_flow_recovers_a_pan():
    s = _scene()
    flow = T.optical_flow(_frame(s, 0), _frame(s, 3))
    assert flow.shape == (96, 128, 2) and flow.dtype == np.float32
    # content moved left by 3: a(p) ~ b(p + flow) with flow = (-3, 0)
    inner = flow[16:-16, 16:-16]
    assert np.median(inner[..., 0]) == pytest.approx(-3, abs=0.25)
    assert np.median(inner[..., 1]) == pytest.approx(0, abs=0.25)


def test_tof_zero_for_faithful_output_and_large_for_frozen_output():
    s = _scene(seed=1)
    gt0, gt1 = _frame(s, 0), _frame(s, 4)
    assert T.tof(gt0, gt1, gt0, gt1) == pytest.approx(0.0, abs=1e-6)
    frozen = T.tof(gt0, gt1, gt0, gt0)  # the output does not move while the GT pans by 4
    assert 2.5 < frozen < 5.0


def test_warp_error_small_for_consistent_motion_and_sees_flicker():
    s = _scene(seed=2)
    f0, f1 = _frame(s, 0), _frame(s, 2)
    consistent = T.warp_error(f0, f1, f0, f1)
    assert consistent < 2.0
    flicker = np.clip(f1.astype(np.int16) + 20, 0, 255).astype(np.uint8)
    assert T.warp_error(f0, flicker, f0, f1) > consistent + 15


def test_valid_mask_drops_pixels_leaving_the_frame():
    h, w = 8, 10
    bw = np.zeros((h, w, 2), np.float32)
    bw[..., 0] = -3  # every pixel came from 3 pixels to its left
    fw = -bw
    mask = T.valid_mask(bw, fw)
    assert not mask[:, :3].any() and mask[:, 3:].all()
    # inconsistent forward flow -> occluded
    assert not T.valid_mask(bw, np.zeros_like(fw))[:, 3:].any()


def test_warp_samples_at_p_plus_flow():
    img = np.arange(5 * 6 * 3, dtype=np.float32).reshape(5, 6, 3)
    flow = np.zeros((5, 6, 2), np.float32)
    flow[..., 0] = 1
    out = T.warp(img, flow)
    np.testing.assert_allclose(out[:, :-1], img[:, 1:])
