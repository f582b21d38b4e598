"""RAFT optical flow (Teed & Deng 2020), written so that its state dict matches torchvision's ``raft_large``.

Key names and shapes follow ``torchvision.models.optical_flow.raft_large`` exactly, so the torchvision
checkpoint (``raft_large_C_T_SKHT_V2-ff5fadd5.pth``) loads with ``strict=True``:

* ``feature_encoder`` / ``context_encoder``: 7x7 stride-2 conv, three stages of two residual blocks
  (``layer1..3``), 1x1 conv to 256 channels; instance norm (no parameters) in the feature encoder,
  batch norm in the context encoder. Every conv carries a bias.
* ``corr_block``: no parameters. 4-level all-pairs correlation pyramid, radius 4 (324 channels).
* ``update_block``: ``motion_encoder`` (convcorr1/2, convflow1/2, conv), ``recurrent_block`` (two
  separable ConvGRUs, 1x5 then 5x1), ``flow_head`` (conv1, conv2).
* ``mask_predictor``: convex-upsampling weights (``convrelu``, ``conv``), scaled by 0.25.

Besides the all-pairs correlation, an *on-demand* lookup gives the same numbers without ever
materialising the ``(H/8 * W/8)^2`` volume (bilinear sampling and average pooling are linear, so
sampling the pooled feature map and taking dot products equals sampling the pooled volume). It is
chosen automatically when the volume would exceed ``corr_budget_bytes``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class RAFTConfig:
    """Architecture of a RAFT model; the defaults are torchvision's ``raft_large``."""

    feature_layers: tuple[int, ...] = (64, 64, 96, 128, 256)
    context_layers: tuple[int, ...] = (64, 64, 96, 128, 256)
    corr_levels: int = 4
    corr_radius: int = 4
    motion_corr_layers: tuple[int, ...] = (256, 192)
    motion_flow_layers: tuple[int, int] = (128, 64)
    motion_out_channels: int = 128
    hidden_size: int = 128
    flow_head_hidden: int = 256
    mask_hidden: int = 256

    @property
    def corr_channels(self) -> int:
        return self.corr_levels * (2 * self.corr_radius + 1) ** 2


RAFT_LARGE = RAFTConfig()
RAFT_TINY = RAFTConfig(
    feature_layers=(8, 8, 16, 16, 32),
    context_layers=(8, 8, 16, 16, 32),
    corr_levels=2,
    corr_radius=2,
    motion_corr_layers=(16, 16),
    motion_flow_layers=(16, 8),
    motion_out_channels=16,
    hidden_size=16,
    flow_head_hidden=16,
    mask_hidden=16,
)


def config_from_state_dict(sd: dict[str, torch.Tensor], corr_levels: int = 4) -> RAFTConfig:
    """Infer a :class:`RAFTConfig` from checkpoint shapes (``corr_levels`` cannot be told apart from radius)."""

    def out(key: str) -> int:
        return int(sd[key].shape[0])

    def enc(prefix: str) -> tuple[int, ...]:
        stages = [f"{prefix}.layer{i}.0.convnormrelu1.0.weight" for i in (1, 2, 3)]
        return (out(f"{prefix}.convnormrelu.0.weight"), *map(out, stages), out(f"{prefix}.conv.weight"))

    me = "update_block.motion_encoder"
    corr_in = int(sd[f"{me}.convcorr1.0.weight"].shape[1])
    side = round((corr_in / corr_levels) ** 0.5)
    if corr_levels * side * side != corr_in or side % 2 == 0:
        raise ValueError(f"cannot split {corr_in} correlation channels into {corr_levels} levels")
    corr_layers = (out(f"{me}.convcorr1.0.weight"),)
    if f"{me}.convcorr2.0.weight" in sd:
        corr_layers += (out(f"{me}.convcorr2.0.weight"),)
    return RAFTConfig(
        feature_layers=enc("feature_encoder"),
        context_layers=enc("context_encoder"),
        corr_levels=corr_levels,
        corr_radius=(side - 1) // 2,
        motion_corr_layers=corr_layers,
        motion_flow_layers=(out(f"{me}.convflow1.0.weight"), out(f"{me}.convflow2.0.weight")),
        motion_out_channels=out(f"{me}.conv.0.weight") + 2,
        hidden_size=int(sd["update_block.flow_head.conv1.weight"].shape[1]),
        flow_head_hidden=out("update_block.flow_head.conv1.weight"),
        mask_hidden=out("mask_predictor.convrelu.0.weight"),
    )


def _conv_norm_act(cin: int, cout: int, k: int, stride: int = 1, norm: str | None = None, act: bool = True):
    """conv (+ norm) (+ ReLU) as ``nn.Sequential``: the layout and indices of torchvision's Conv2dNormActivation."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride=stride, padding=(k - 1) // 2, bias=True)]
    if norm == "batch":
        layers.append(nn.BatchNorm2d(cout))
    elif norm == "instance":
        layers.append(nn.InstanceNorm2d(cout))
    elif norm is not None:
        raise ValueError(f"unknown norm {norm!r}")
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """Two conv-norm-ReLU layers plus a (projected when strided) skip, then ReLU."""

    def __init__(self, cin: int, cout: int, norm: str, stride: int = 1):
        super().__init__()
        self.convnormrelu1 = _conv_norm_act(cin, cout, 3, stride, norm)
        self.convnormrelu2 = _conv_norm_act(cout, cout, 3, 1, norm)
        self.downsample = nn.Identity() if stride == 1 else _conv_norm_act(cin, cout, 1, stride, norm, act=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.convnormrelu2(self.convnormrelu1(x))
        return self.relu(self.downsample(x) + y)


class FeatureEncoder(nn.Module):
    """Image -> features at 1/8 resolution: ``(B, 3, H, W) -> (B, layers[4], H/8, W/8)``."""

    def __init__(self, layers: tuple[int, ...], norm: str):
        super().__init__()
        self.convnormrelu = _conv_norm_act(3, layers[0], 7, 2, norm)
        self.layer1 = self._two_blocks(layers[0], layers[1], norm, 1)
        self.layer2 = self._two_blocks(layers[1], layers[2], norm, 2)
        self.layer3 = self._two_blocks(layers[2], layers[3], norm, 2)
        self.conv = nn.Conv2d(layers[3], layers[4], kernel_size=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _two_blocks(cin: int, cout: int, norm: str, stride: int) -> nn.Sequential:
        return nn.Sequential(ResidualBlock(cin, cout, norm, stride), ResidualBlock(cout, cout, norm, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convnormrelu(x)
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.conv(x)


class MotionEncoder(nn.Module):
    """(flow, correlation features) -> motion features (with the raw flow appended as 2 channels)."""

    def __init__(self, corr_channels: int, corr_layers: tuple[int, ...], flow_layers: tuple[int, int], out: int):
        super().__init__()
        self.convcorr1 = _conv_norm_act(corr_channels, corr_layers[0], 1)
        self.convcorr2 = _conv_norm_act(corr_layers[0], corr_layers[1], 3) if len(corr_layers) == 2 else nn.Identity()
        self.convflow1 = _conv_norm_act(2, flow_layers[0], 7)
        self.convflow2 = _conv_norm_act(flow_layers[0], flow_layers[1], 3)
        self.conv = _conv_norm_act(corr_layers[-1] + flow_layers[-1], out - 2, 3)

    def forward(self, flow: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
        c = self.convcorr2(self.convcorr1(corr))
        f = self.convflow2(self.convflow1(flow))
        return torch.cat([self.conv(torch.cat([c, f], dim=1)), flow], dim=1)


class ConvGRU(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, kernel: tuple[int, int], padding: tuple[int, int]):
        super().__init__()
        cin = hidden_size + input_size
        self.convz = nn.Conv2d(cin, hidden_size, kernel, padding=padding)
        self.convr = nn.Conv2d(cin, hidden_size, kernel, padding=padding)
        self.convq = nn.Conv2d(cin, hidden_size, kernel, padding=padding)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        hx = torch.cat([h, x], dim=1)
        z = torch.sigmoid(self.convz(hx))
        r = torch.sigmoid(self.convr(hx))
        q = torch.tanh(self.convq(torch.cat([r * h, x], dim=1)))
        return (1 - z) * h + z * q


class RecurrentBlock(nn.Module):
    """Separable ConvGRU: a 1x5 GRU then a 5x1 GRU."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.convgru1 = ConvGRU(input_size, hidden_size, (1, 5), (0, 2))
        self.convgru2 = ConvGRU(input_size, hidden_size, (5, 1), (2, 0))
        self.hidden_size = hidden_size

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.convgru2(self.convgru1(h, x), x)


class FlowHead(nn.Module):
    def __init__(self, cin: int, hidden: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu(self.conv1(x)))


class UpdateBlock(nn.Module):
    def __init__(self, cfg: RAFTConfig):
        super().__init__()
        self.motion_encoder = MotionEncoder(
            cfg.corr_channels, cfg.motion_corr_layers, cfg.motion_flow_layers, cfg.motion_out_channels
        )
        context = cfg.context_layers[-1] - cfg.hidden_size
        self.recurrent_block = RecurrentBlock(cfg.motion_out_channels + context, cfg.hidden_size)
        self.flow_head = FlowHead(cfg.hidden_size, cfg.flow_head_hidden)

    def forward(self, h: torch.Tensor, context: torch.Tensor, corr: torch.Tensor, flow: torch.Tensor):
        x = torch.cat([context, self.motion_encoder(flow, corr)], dim=1)
        h = self.recurrent_block(h, x)
        return h, self.flow_head(h)


class MaskPredictor(nn.Module):
    """Hidden state -> 9 convex weights for each of the 8x8 sub-pixels (scaled by 0.25, as trained)."""

    def __init__(self, cin: int, hidden: int, multiplier: float = 0.25):
        super().__init__()
        self.convrelu = _conv_norm_act(cin, hidden, 3)
        self.conv = nn.Conv2d(hidden, 8 * 8 * 9, 1, padding=0)
        self.multiplier = multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.multiplier * self.conv(self.convrelu(x))


class CorrBlock(nn.Module):
    """Correlation pyramid (no parameters): all-pairs volume or on-demand lookups, same numbers."""

    def __init__(self, levels: int, radius: int):
        super().__init__()
        self.levels = levels
        self.radius = radius
        self.out_channels = levels * (2 * radius + 1) ** 2

    def _delta(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """``(K*K, 2)`` offsets; row ``i*K + j`` is ``(x + d_i, y + d_j)`` (torchvision's channel order)."""
        d = torch.linspace(-self.radius, self.radius, 2 * self.radius + 1, device=device, dtype=dtype)
        return torch.stack(torch.meshgrid(d, d, indexing="ij"), dim=-1).reshape(-1, 2)

    @staticmethod
    def _normalise(coords: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Absolute pixel coordinates (x, y) -> grid_sample's [-1, 1] with align_corners=True."""
        x, y = coords.split(1, dim=-1)
        x = 2 * x / (w - 1) - 1
        if h > 1:
            y = 2 * y / (h - 1) - 1
        return torch.cat([x, y], dim=-1)

    def check(self, fmap: torch.Tensor) -> None:
        smallest = 2 * 2 ** (self.levels - 1)
        if min(fmap.shape[-2:]) < smallest:
            raise ValueError(
                f"RAFT feature maps {tuple(fmap.shape[-2:])} are too small for a {self.levels}-level pyramid:"
                f" images must be at least {8 * smallest} px on each side"
            )

    def build(self, f1: torch.Tensor, f2: torch.Tensor) -> list[torch.Tensor]:
        """All-pairs pyramid: level l is ``(B*h*w, 1, h/2^l, w/2^l)``."""
        b, c, h, w = f1.shape
        corr = torch.matmul(f1.view(b, c, h * w).transpose(1, 2), f2.view(b, c, h * w))  # (B, hw, hw)
        corr = (corr / math.sqrt(c)).view(b * h * w, 1, h, w)
        pyramid = [corr]
        for _ in range(self.levels - 1):
            corr = F.avg_pool2d(corr, kernel_size=2, stride=2)
            pyramid.append(corr)
        return pyramid

    def lookup(self, pyramid: list[torch.Tensor], coords: torch.Tensor) -> torch.Tensor:
        """Index the all-pairs pyramid around ``coords`` ``(B, 2, h, w)`` -> ``(B, levels*K*K, h, w)``."""
        b, _, h, w = coords.shape
        delta = self._delta(coords.device, coords.dtype).view(1, 2 * self.radius + 1, 2 * self.radius + 1, 2)
        centre = coords.permute(0, 2, 3, 1).reshape(b * h * w, 1, 1, 2)
        out = []
        for level in pyramid:
            grid = self._normalise(centre + delta, level.shape[-2], level.shape[-1]).to(level.dtype)
            out.append(F.grid_sample(level, grid, mode="bilinear", align_corners=True).view(b, h, w, -1))
            centre = centre / 2
        return torch.cat(out, dim=-1).permute(0, 3, 1, 2).contiguous()

    def pool_features(self, f2: torch.Tensor) -> list[torch.Tensor]:
        """Feature pyramid for on-demand lookups: ``f2`` average-pooled 0..levels-1 times."""
        pyr = [f2]
        for _ in range(self.levels - 1):
            pyr.append(F.avg_pool2d(pyr[-1], kernel_size=2, stride=2))
        return pyr

    def lookup_on_demand(
        self, f1: torch.Tensor, f2_pyramid: list[torch.Tensor], coords: torch.Tensor, chunk: int = 4096
    ) -> torch.Tensor:
        """Same result as :meth:`lookup` of :meth:`build`, in ``O(h*w*K*K*C/chunks)`` memory."""
        b, c, h, w = f1.shape
        q1 = f1.flatten(2)  # (B, C, hw)
        delta = self._delta(coords.device, coords.dtype)  # (K*K, 2)
        centre = coords.permute(0, 2, 3, 1).reshape(b, h * w, 1, 2)
        scale = 1.0 / math.sqrt(c)
        out = []
        for lvl, f2 in enumerate(f2_pyramid):
            pts = centre / (2**lvl) + delta  # (B, hw, K*K, 2)
            grid = self._normalise(pts, f2.shape[-2], f2.shape[-1]).to(f2.dtype)
            parts = []
            for s in range(0, h * w, chunk):
                sampled = F.grid_sample(f2, grid[:, s : s + chunk], mode="bilinear", align_corners=True)
                parts.append(torch.einsum("bcq,bcqk->bqk", q1[:, :, s : s + chunk], sampled) * scale)
            out.append(torch.cat(parts, dim=1))  # (B, hw, K*K)
        return torch.cat(out, dim=-1).transpose(1, 2).reshape(b, -1, h, w)


def coords_grid(b: int, h: int, w: int, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(B, 2, h, w)`` pixel coordinates, channel 0 = x, channel 1 = y."""
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=dtype),
        torch.arange(w, device=device, dtype=dtype),
        indexing="ij",
    )
    return torch.stack([xs, ys])[None].repeat(b, 1, 1, 1)


def convex_upsample(flow: torch.Tensor, mask: torch.Tensor, factor: int = 8) -> torch.Tensor:
    """Upsample ``(B, 2, h, w)`` flow by ``factor`` as a softmax-weighted mix of its 3x3 neighbours."""
    b, c, h, w = flow.shape
    mask = torch.softmax(mask.view(b, 1, 9, factor, factor, h, w), dim=2)
    nb = F.unfold(factor * flow, kernel_size=3, padding=1).view(b, c, 9, 1, 1, h, w)
    up = torch.sum(mask * nb, dim=2)  # (B, 2, f, f, h, w)
    return up.permute(0, 1, 4, 2, 5, 3).reshape(b, c, factor * h, factor * w)


class RAFT(nn.Module):
    """RAFT with torchvision's module tree. ``forward(img1, img2)`` gives the flow from img1 to img2.

    Images are ``(B, 3, H, W)`` in [-1, 1] with H, W multiples of 8; the result is ``(B, 2, H, W)`` in
    pixels (x, y): ``img1(p) ~ img2(p + flow(p))``.
    """

    def __init__(self, cfg: RAFTConfig = RAFT_LARGE):
        super().__init__()
        if cfg.context_layers[-1] <= cfg.hidden_size:
            raise ValueError("context encoder output must be wider than the hidden state")
        self.cfg = cfg
        self.feature_encoder = FeatureEncoder(cfg.feature_layers, "instance")
        self.context_encoder = FeatureEncoder(cfg.context_layers, "batch")
        self.corr_block = CorrBlock(cfg.corr_levels, cfg.corr_radius)
        self.update_block = UpdateBlock(cfg)
        self.mask_predictor = MaskPredictor(cfg.hidden_size, cfg.mask_hidden)
        self.corr_mode = "auto"  # "all-pairs" | "on-demand" | "auto"
        self.corr_budget_bytes = 2 * 1024**3

    def _use_on_demand(self, b: int, h: int, w: int, itemsize: int) -> bool:
        if self.corr_mode == "auto":
            return b * (h * w) ** 2 * itemsize * 4 / 3 > self.corr_budget_bytes
        if self.corr_mode not in ("all-pairs", "on-demand"):
            raise ValueError(f"unknown corr_mode {self.corr_mode!r}")
        return self.corr_mode == "on-demand"

    def forward(
        self,
        image1: torch.Tensor,
        image2: torch.Tensor,
        num_flow_updates: int = 12,
        all_predictions: bool = False,
    ) -> torch.Tensor | list[torch.Tensor]:
        b, _, h, w = image1.shape
        if image2.shape != image1.shape:
            raise ValueError(f"images differ in shape: {tuple(image1.shape)} vs {tuple(image2.shape)}")
        if h % 8 or w % 8:
            raise ValueError(f"RAFT needs H and W divisible by 8, got {h}x{w}")
        fmaps = self.feature_encoder(torch.cat([image1, image2], dim=0))
        f1, f2 = fmaps.chunk(2, dim=0)  # (B, C, h/8, w/8) each
        self.corr_block.check(f1)
        on_demand = self._use_on_demand(b, h // 8, w // 8, f1.element_size())
        pyramid = self.corr_block.pool_features(f2) if on_demand else self.corr_block.build(f1, f2)
        del fmaps, f2

        ctx = self.context_encoder(image1)
        hidden, context = ctx.split([self.cfg.hidden_size, ctx.shape[1] - self.cfg.hidden_size], dim=1)
        hidden, context = torch.tanh(hidden), F.relu(context)

        coords0 = coords_grid(b, h // 8, w // 8, image1.device, f1.dtype)
        coords1 = coords0.clone()
        preds: list[torch.Tensor] = []
        for it in range(num_flow_updates):
            if on_demand:
                corr = self.corr_block.lookup_on_demand(f1, pyramid, coords1)
            else:
                corr = self.corr_block.lookup(pyramid, coords1)
            hidden, delta = self.update_block(hidden, context, corr, coords1 - coords0)
            coords1 = coords1 + delta
            if all_predictions or it == num_flow_updates - 1:
                preds.append(convex_upsample(coords1 - coords0, self.mask_predictor(hidden)))
        return preds if all_predictions else preds[-1]
