"""Optical-flow helpers: warping, flow resizing, OpenCV DIS, and a flow estimator with cheaper options.

Flows are ``(B, 2, H, W)`` float tensors in pixels, channel 0 = x, channel 1 = y. A *backward* flow
from the current frame into the previous one satisfies ``cur(p) ~ prev(p + flow(p))``; warping the
previous frame with it aligns the previous frame to the current one.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def flow_grid(flow: torch.Tensor) -> torch.Tensor:
    """Sampling grid of Stream-DiffVSR's (BasicSR-style) warp: ``2 * (p + flow) / (size - 1) - 1``.

    The grid is normalised with ``size - 1`` but sampled with ``align_corners=False``, which moves
    the sample point to ``(p + flow) * size / (size - 1) - 0.5``: a sub-pixel stretch the official
    weights were trained with, kept on purpose.
    """
    b, _, h, w = flow.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=flow.device, dtype=flow.dtype),
        torch.arange(w, device=flow.device, dtype=flow.dtype),
        indexing="ij",
    )
    gx = 2.0 * (xs + flow[:, 0]) / max(w - 1, 1) - 1.0  # (B, H, W)
    gy = 2.0 * (ys + flow[:, 1]) / max(h - 1, 1) - 1.0
    return torch.stack([gx, gy], dim=-1)  # (B, H, W, 2)


def warp(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Warp ``image`` ``(B, C, H, W)`` with backward ``flow`` ``(B, 2, H, W)``; outside the frame -> 0."""
    if flow.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"flow {tuple(flow.shape)} and image {tuple(image.shape)} differ in size")
    grid = flow_grid(flow.float()).to(image.dtype)
    return F.grid_sample(image, grid, mode=mode, padding_mode="zeros", align_corners=False)


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear-resize a flow field to ``size`` (H, W), scaling the vectors by the same factors."""
    h, w = flow.shape[-2:]
    if (h, w) == tuple(size):
        return flow
    out = F.interpolate(flow, size=size, mode="bilinear", align_corners=False)
    sx, sy = size[1] / w, size[0] / h
    return torch.cat([out[:, :1] * sx, out[:, 1:] * sy], dim=1)


def _gray_u8(image: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` in [-1, 1] -> (H, W) uint8 luma (BT.601 weights)."""
    x = ((image.float().clamp(-1, 1) + 1) * 127.5).cpu()
    y = 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]
    return y.round().to(torch.uint8).numpy()


DIS_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}


def dis_flow(cur: torch.Tensor, prev: torch.Tensor, preset: str = "medium") -> torch.Tensor:
    """OpenCV DIS backward flow from ``cur`` to ``prev`` (``(B, 3, H, W)`` in [-1, 1]), on the CPU.

    Returns ``(B, 2, H, W)`` float32 on the inputs' device.
    """
    import cv2

    if preset not in DIS_PRESETS:
        raise ValueError(f"unknown DIS preset {preset!r}; choose from {', '.join(DIS_PRESETS)}")
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
    out = []
    for c, p in zip(cur, prev):
        f = dis.calc(_gray_u8(c), _gray_u8(p), None)  # (H, W, 2): cur(x) ~ prev(x + f(x))
        out.append(torch.from_numpy(f).permute(2, 0, 1))
    return torch.stack(out).to(cur.device)


def _pad_for_raft(x: torch.Tensor, minimum: int) -> torch.Tensor:
    """Replicate-pad on the bottom/right to a multiple of 8 and at least ``minimum`` px per side."""
    h, w = x.shape[-2:]
    th = max(minimum, -(-h // 8) * 8)
    tw = max(minimum, -(-w // 8) * 8)
    if (th, tw) == (h, w):
        return x
    return F.pad(x, (0, tw - w, 0, th - h), mode="replicate")


class FlowEstimator:
    """Backward flow at HR from two LR frames, with the cost/quality knob ``resolution``.

    ``method``: ``"raft"`` (needs ``raft``, a :class:`streamvsr.models.raft.RAFT`) or ``"dis"`` (OpenCV).
    ``resolution``: where flow is computed, as a fraction of the HR size: ``1.0`` is the official
    setting (bicubic x``scale`` LR frames), ``0.5`` halves each side (4x fewer pixels, 16x smaller
    correlation volume), ``1/scale`` (``"lr"``) runs directly on the LR frames. The flow is then
    bilinearly resized to HR with its vectors scaled.
    """

    def __init__(
        self,
        method: str = "raft",
        raft: torch.nn.Module | None = None,
        scale: int = 4,
        resolution: float | str = 1.0,
        iters: int = 12,
        dtype: torch.dtype = torch.float32,
        dis_preset: str = "medium",
    ):
        if method not in ("raft", "dis"):
            raise ValueError(f"unknown flow method {method!r}")
        if method == "raft" and raft is None:
            raise ValueError("flow method 'raft' needs a RAFT model")
        if resolution == "lr":
            resolution = 1.0 / scale
        if resolution == "hr":
            resolution = 1.0
        resolution = float(resolution)
        if not 0 < resolution <= 1:
            raise ValueError(f"flow resolution must be in (0, 1], got {resolution}")
        self.method = method
        self.raft = raft
        self.scale = scale
        self.resolution = resolution
        self.iters = iters
        self.dtype = dtype
        self.dis_preset = dis_preset
        self._min_side = 8 * 2 * 2 ** (raft.cfg.corr_levels - 1) if raft is not None else 8

    def flow_size(self, lr_size: tuple[int, int]) -> tuple[int, int]:
        """(H, W) at which flow is computed for LR frames of ``lr_size``."""
        f = self.scale * self.resolution
        return max(1, round(lr_size[0] * f)), max(1, round(lr_size[1] * f))

    def _inputs(self, lr: torch.Tensor) -> torch.Tensor:
        size = self.flow_size(tuple(lr.shape[-2:]))
        if size == tuple(lr.shape[-2:]):
            return lr
        return F.interpolate(lr, size=size, mode="bicubic", align_corners=False)

    @torch.inference_mode()
    def __call__(self, cur_lr: torch.Tensor, prev_lr: torch.Tensor) -> torch.Tensor:
        """LR frames ``(B, 3, h, w)`` in [-1, 1] -> backward flow ``(B, 2, scale*h, scale*w)`` float32."""
        hr = (cur_lr.shape[-2] * self.scale, cur_lr.shape[-1] * self.scale)
        a, b = self._inputs(cur_lr.float()), self._inputs(prev_lr.float())
        fh, fw = a.shape[-2:]
        if self.method == "dis":
            flow = dis_flow(a, b, self.dis_preset)
        else:
            pa = _pad_for_raft(a, self._min_side).to(self.dtype)
            pb = _pad_for_raft(b, self._min_side).to(self.dtype)
            flow = self.raft(pa, pb, num_flow_updates=self.iters)[..., :fh, :fw].float()
            del pa, pb
        return resize_flow(flow, hr)


def epe(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean end-point error between two ``(B, 2, H, W)`` flows, in pixels."""
    return float(torch.linalg.vector_norm(a - b, dim=1).mean())


def warp_error(cur: torch.Tensor, prev: torch.Tensor, flow: torch.Tensor, margin: int = 0) -> float:
    """Mean absolute error between ``cur`` and ``prev`` warped by ``flow`` (a flow-quality proxy)."""
    w = warp(prev, flow)
    if margin:
        w, cur = w[..., margin:-margin, margin:-margin], cur[..., margin:-margin, margin:-margin]
    return float((w - cur).abs().mean())
