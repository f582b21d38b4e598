"""RRDBNet (ESRGAN's generator, Wang et al. 2018), the network of Real-ESRGAN x4plus.

Shallow conv -> ``num_block`` Residual-in-Residual Dense Blocks -> conv, a global skip, then two
(nearest x2 -> conv -> LeakyReLU) up-sampling stages, a conv + LeakyReLU and the output conv.
Only the x4 layout (no pixel-unshuffle input) is defined here. Input and output are RGB in [0, 1]
(the output is not clamped).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class RRDBConfig:
    in_ch: int = 3
    out_ch: int = 3
    num_feat: int = 64
    num_block: int = 23
    num_grow_ch: int = 32
    res_scale: float = 0.2  # residual scaling inside dense blocks and RRDBs
    slope: float = 0.2  # LeakyReLU negative slope


class ResidualDenseBlock(nn.Module):
    """5 densely connected 3x3 convs; output = x + res_scale * conv5(cat(x, x1..x4))."""

    def __init__(self, num_feat: int, num_grow_ch: int, res_scale: float, slope: float):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(num_feat + i * num_grow_ch, num_grow_ch if i < 4 else num_feat, 3, padding=1) for i in range(5)
        )
        self.res_scale = res_scale
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in self.convs[:-1]:
            feats.append(F.leaky_relu(conv(torch.cat(feats, dim=1)), self.slope))
        return x + self.res_scale * self.convs[-1](torch.cat(feats, dim=1))


class RRDB(nn.Module):
    """Three dense blocks in a residual: x + res_scale * rdb3(rdb2(rdb1(x)))."""

    def __init__(self, cfg: RRDBConfig):
        super().__init__()
        self.rdbs = nn.Sequential(
            *(ResidualDenseBlock(cfg.num_feat, cfg.num_grow_ch, cfg.res_scale, cfg.slope) for _ in range(3))
        )
        self.res_scale = cfg.res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.rdbs(x)


class RRDBNet(nn.Module):
    """x4 RRDBNet: ``(N, 3, h, w)`` -> ``(N, 3, 4h, 4w)``."""

    scale = 4

    def __init__(self, cfg: RRDBConfig | None = None):
        super().__init__()
        cfg = cfg or RRDBConfig()
        self.cfg = cfg
        nf = cfg.num_feat
        self.conv_first = nn.Conv2d(cfg.in_ch, nf, 3, padding=1)
        self.body = nn.Sequential(*(RRDB(cfg) for _ in range(cfg.num_block)))
        self.conv_body = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_up1 = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_up2 = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_hr = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_last = nn.Conv2d(nf, cfg.out_ch, 3, padding=1)

    def convs_in_order(self) -> list[nn.Conv2d]:
        """Every conv in execution order (the order of exported graphs such as ncnn's)."""
        convs = [self.conv_first]
        for rrdb in self.body:
            for rdb in rrdb.rdbs:
                convs.extend(rdb.convs)
        return [*convs, self.conv_body, self.conv_up1, self.conv_up2, self.conv_hr, self.conv_last]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.cfg.slope
        feat = self.conv_first(x)  # (N, nf, h, w)
        feat = feat + self.conv_body(self.body(feat))
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), s)
        feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), s)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), s))  # (N, 3, 4h, 4w)
