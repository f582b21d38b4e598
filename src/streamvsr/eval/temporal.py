"""Temporal-consistency metrics from OpenCV DIS optical flow (CPU).

Definitions (frames are ``(H, W, 3)`` RGB uint8; flow is computed on grey, ``cv2.COLOR_RGB2GRAY``,
with ``DISOpticalFlow`` preset MEDIUM; ``flow(a -> b)`` satisfies ``a(p) ~ b(p + flow(p))``):

* tOF (pixels): mean over pixels of the end-point distance
  ``|| flow(GT_{t-1} -> GT_t) - flow(SR_{t-1} -> SR_t) ||_2`` (TecoGAN's tOF, with DIS flow).
* Warping error (0..255): mean over valid pixels and RGB of ``|SR_t - warp(SR_{t-1}, f)|`` where
  ``f = flow(R_t -> R_{t-1})`` is the backward flow of the reference frames R (GT when there is
  one, otherwise the bicubic-upscaled input) and ``warp`` samples bilinearly at ``p + f(p)``.
  Valid pixels land inside the frame and pass the forward-backward check of Sundaram et al. 2010:
  ``|f_b + f_f(p + f_b)|^2 < 0.01 (|f_b|^2 + |f_f(p + f_b)|^2) + 0.5``.

Both are per pair of consecutive frames; a sequence's value is the mean over its pairs.
"""

from __future__ import annotations

import cv2
import numpy as np


def to_gray_u8(img: np.ndarray) -> np.ndarray:
    """RGB ``(H, W, 3)`` uint8 -> grey ``(H, W)`` uint8."""
    if img.ndim == 2:
        return np.ascontiguousarray(img, dtype=np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(img, dtype=np.uint8), cv2.COLOR_RGB2GRAY)


def optical_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """DIS flow ``a -> b`` of two RGB or grey uint8 frames: ``(H, W, 2)`` float32 (x, y) in pixels."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(to_gray_u8(a), to_gray_u8(b), None)


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def warp(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``img`` at ``p + flow(p)`` (bilinear, replicated border); float32 result."""
    h, w = flow.shape[:2]
    xs, ys = _grid(h, w)
    return cv2.remap(
        np.asarray(img, np.float32),
        xs + flow[..., 0],
        ys + flow[..., 1],
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def valid_mask(flow_bw: np.ndarray, flow_fw: np.ndarray) -> np.ndarray:
    """Pixels whose backward flow lands inside the frame and is consistent with the forward flow."""
    h, w = flow_bw.shape[:2]
    xs, ys = _grid(h, w)
    tx, ty = xs + flow_bw[..., 0], ys + flow_bw[..., 1]
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    fw_at = warp(flow_fw, flow_bw)  # forward flow sampled where each pixel came from
    total = flow_bw + fw_at
    lhs = (total**2).sum(-1)
    rhs = 0.01 * ((flow_bw**2).sum(-1) + (fw_at**2).sum(-1)) + 0.5
    return inside & (lhs < rhs)


def tof_from_flows(flow_gt: np.ndarray, flow_sr: np.ndarray) -> float:
    """Mean end-point distance between two flow fields ``(H, W, 2)``."""
    d = flow_gt.astype(np.float64) - flow_sr.astype(np.float64)
    return float(np.mean(np.sqrt((d * d).sum(-1))))


def warp_error_with_flow(sr_prev: np.ndarray, sr_cur: np.ndarray, flow_bw: np.ndarray, mask: np.ndarray) -> float:
    """Mean ``|sr_cur - warp(sr_prev, flow_bw)|`` over ``mask`` pixels and channels (0..255)."""
    if not mask.any():
        return float("nan")
    err = np.abs(np.asarray(sr_cur, np.float32) - warp(sr_prev, flow_bw))  # (H, W, 3)
    return float(err[mask].mean())


def tof(gt_prev: np.ndarray, gt_cur: np.ndarray, sr_prev: np.ndarray, sr_cur: np.ndarray) -> float:
    """tOF of one frame pair (see module docstring)."""
    return tof_from_flows(optical_flow(gt_prev, gt_cur), optical_flow(sr_prev, sr_cur))


def warp_error(sr_prev: np.ndarray, sr_cur: np.ndarray, ref_prev: np.ndarray, ref_cur: np.ndarray) -> float:
    """Warping error of one SR frame pair, with flow from the reference pair (see module docstring)."""
    flow_bw = optical_flow(ref_cur, ref_prev)
    flow_fw = optical_flow(ref_prev, ref_cur)
    return warp_error_with_flow(sr_prev, sr_cur, flow_bw, valid_mask(flow_bw, flow_fw))
