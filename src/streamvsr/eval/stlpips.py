"""ST-LPIPS (shift-tolerant LPIPS, Ghildyal & Liu, ECCV 2022) with the AlexNet trunk.

The network is defined here (no torchvision): an anti-aliased AlexNet whose first convolution has
stride 1 and whose down-sampling is done by [1 2 1] x [1 2 1] blur-pool layers (reflection padding
of 2 pixels, stride 2) after each ReLU / max-pool. LPIPS then unit-normalises the features of 5
layers over channels, takes the squared difference, weights channels with learned 1x1 linear
layers, averages spatially and sums the layers.

The trained weights (trunk and linear layers, 9.9 MB) ship in the ``stlpips-pytorch`` wheel
(BSD-2-Clause) as ``stlpips_pytorch/weights/vST0.0/alex_shift_tolerant.pth``; we only read that file
(the package itself imports torchvision and is not imported).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from streamvsr.errors import ModelError

_WEIGHTS = Path("weights") / "vST0.0" / "alex_shift_tolerant.pth"
CHANNELS = (64, 192, 384, 256, 256)

# our module name -> key in the wheel's state dict
_KEY_MAP = {
    "conv1": "net.slice1.0",
    "conv2": "net.slice2.5",
    "conv3": "net.slice3.9",
    "conv4": "net.slice4.11",
    "conv5": "net.slice5.13",
}


class BlurPool(nn.Module):
    """Reflection-pad by 2, then a depthwise [1 2 1]^T [1 2 1] / 16 filter with stride 2."""

    def __init__(self, channels: int):
        super().__init__()
        a = torch.tensor([1.0, 2.0, 1.0])
        k = torch.outer(a, a) / 16
        self.register_buffer("filt", k.expand(channels, 1, 3, 3).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (2, 2, 2, 2), mode="reflect")
        return F.conv2d(x, self.filt, stride=2, groups=x.shape[1])


class ShiftTolerantAlexNet(nn.Module):
    """The 5-stage feature trunk; returns the 5 feature maps LPIPS compares."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 11, stride=1, padding=2)
        self.pool1 = BlurPool(64)
        self.pool2 = BlurPool(64)
        self.conv2 = nn.Conv2d(64, 192, 5, padding=2)
        self.pool3 = BlurPool(192)
        self.conv3 = nn.Conv2d(192, 384, 3, padding=1)
        self.conv4 = nn.Conv2d(384, 256, 3, padding=1)
        self.conv5 = nn.Conv2d(256, 256, 3, padding=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h1 = F.relu(self.pool1(self.conv1(x)))
        h = self.pool2(F.max_pool2d(h1, 3, stride=1))
        h2 = F.relu(self.conv2(h))
        h = self.pool3(F.max_pool2d(h2, 3, stride=1))
        h3 = F.relu(self.conv3(h))
        h4 = F.relu(self.conv4(h3))
        h5 = F.relu(self.conv5(h4))
        return [h1, h2, h3, h4, h5]


def _unit_normalize(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return x / (torch.sqrt((x * x).sum(dim=1, keepdim=True)) + eps)


class STLPIPS(nn.Module):
    """ST-LPIPS distance between ``(N, 3, H, W)`` RGB images in [0, 1]; returns ``(N,)`` (lower = closer)."""

    def __init__(self):
        super().__init__()
        self.net = ShiftTolerantAlexNet()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised trunk features of ``(N, 3, H, W)`` images in [0, 1] (reusable across pairs)."""
        x = ((2 * x - 1) - self.shift) / self.scale  # [0, 1] -> [-1, 1] -> LPIPS' ImageNet scaling
        return [_unit_normalize(f) for f in self.net(x)]

    def distance(
        self, fa: list[torch.Tensor], fb: list[torch.Tensor], weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """ST-LPIPS from two :meth:`features` results: ``(N,)``. ``weight`` (N, 1, H, W) at image resolution (a
        training option, not the metric): each layer's spatial map is multiplied by it, area-resized, before the
        mean."""
        total = torch.zeros(fa[0].shape[0], device=fa[0].device, dtype=fa[0].dtype)
        for a, b, lin in zip(fa, fb, self.lins):
            d = lin((a - b) ** 2)  # (N, 1, h, w)
            if weight is not None:
                d = d * F.interpolate(weight.to(d.dtype), size=d.shape[-2:], mode="area")
            total = total + d.mean(dim=(1, 2, 3))
        return total

    def forward(self, a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return self.distance(self.features(a), self.features(b), weight)


def weights_path() -> Path:
    """Where the ``stlpips-pytorch`` wheel keeps its AlexNet ST-LPIPS weights (not imported)."""
    spec = importlib.util.find_spec("stlpips_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("ST-LPIPS needs the 'stlpips-pytorch' package (pip install stlpips-pytorch)")
    path = Path(next(iter(spec.submodule_search_locations))) / _WEIGHTS
    if not path.is_file():
        raise ModelError(f"ST-LPIPS weights missing from the stlpips-pytorch package: {path}")
    return path


def convert_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the wheel's state dict onto :class:`STLPIPS` (trunk and linear layers are both required)."""
    out: dict[str, torch.Tensor] = {}
    for ours, theirs in _KEY_MAP.items():
        for p in ("weight", "bias"):
            key = f"{theirs}.{p}"
            if key not in sd:
                raise ModelError(f"ST-LPIPS weights lack the trunk tensor {key!r}")
            out[f"net.{ours}.{p}"] = sd[key]
    for i in range(len(CHANNELS)):
        key = f"lin{i}.model.1.weight"
        if key not in sd:
            raise ModelError(f"ST-LPIPS weights lack the linear layer {key!r}")
        out[f"lins.{i}.weight"] = sd[key]
    out["shift"] = sd.get("scaling_layer.shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
    out["scale"] = sd.get("scaling_layer.scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
    return out


def load_stlpips(device: str | torch.device = "cpu", path: str | Path | None = None) -> STLPIPS:
    """Build ST-LPIPS (AlexNet) with the shipped weights, in eval mode on ``device``."""
    sd = torch.load(path or weights_path(), map_location="cpu", weights_only=True)
    model = STLPIPS()
    model.load_state_dict(convert_state_dict(sd))
    return model.eval().requires_grad_(False).to(device)
