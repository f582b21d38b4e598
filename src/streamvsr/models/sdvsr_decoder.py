"""Stream-DiffVSR's temporal tiny autoencoder: TAESD layout plus a Temporal Processor Module (TPM) per block.

State-dict keys follow diffusers ``AutoencoderTiny`` (``encoder.layers.{i}.conv.{0,2,4}``,
``decoder.layers.{i}...``) with two extras in every block: ``alpha`` (a scalar) and
``temporal_processor.{0,2}`` (two Conv1d, k=3). Layout for the official config (64 channels,
encoder blocks [1, 3, 3], decoder blocks [3, 3, 1], x4):

* encoder: 0 conv 3->64, 1 block @H, 2 conv s2, 3-5 blocks @H/2, 6 conv s2, 7-9 blocks @H/4, 10 conv 64->4;
* decoder: 0 conv 4->64, 1 ReLU, 2-4 blocks @H/4, 5 up x2, 6 conv, 7-9 blocks @H/2, 10 up x2, 11 conv,
  12 block @H, 13 conv 64->3.

TPM (decoder blocks only, given the paired encoder feature P of the warped previous output)::

    F  = conv branch of the block                                   # (B, C, H, W)
    S  = concat(flatten(avgpool4(F)), flatten(avgpool4(P)))  along the sequence   # (B, C, 2N)
    T  = Conv1d(ReLU(Conv1d(S)))
    G  = bilinear_up(alpha * T[..., :N] + (1 - alpha) * T[..., N:])
    out = ReLU(F + 0.1 * G + skip(x))

The features come from :meth:`TemporalAutoencoderTiny.features`: the encoder run on the *raw* [-1, 1]
image (no (x+1)/2 rescale), the output of every block, in reverse order, which pairs encoder blocks
[9, 8, 7, 5, 4, 3, 1] with decoder blocks [2, 3, 4, 7, 8, 9, 12].
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

TPM_POOL = 4
TPM_SCALE = 0.1


@dataclass(frozen=True)
class TAEConfig:
    """``vae/config.json`` of Stream-DiffVSR (unknown keys are ignored by :meth:`from_dict`)."""

    in_channels: int = 3
    out_channels: int = 3
    encoder_block_out_channels: tuple[int, ...] = (64, 64, 64)
    decoder_block_out_channels: tuple[int, ...] = (64, 64, 64)
    num_encoder_blocks: tuple[int, ...] = (1, 3, 3)
    num_decoder_blocks: tuple[int, ...] = (3, 3, 1)
    latent_channels: int = 4
    upsampling_scaling_factor: int = 2
    upsample_fn: str = "nearest"
    act_fn: str = "relu"
    scaling_factor: float = 1.0
    shift_factor: float = 0.0
    latent_magnitude: float = 3.0
    latent_shift: float = 0.5

    @classmethod
    def from_dict(cls, d: dict) -> TAEConfig:
        names = {f.name for f in fields(cls)}
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names and v is not None}
        return cls(**kw)

    @property
    def scale(self) -> int:
        """Spatial factor between image and latent."""
        return self.upsampling_scaling_factor ** (len(self.num_decoder_blocks) - 1)


def _act(name: str) -> nn.Module:
    acts = {"relu": nn.ReLU, "silu": nn.SiLU, "swish": nn.SiLU, "gelu": nn.GELU, "mish": nn.Mish}
    if name not in acts:
        raise ValueError(f"unknown activation {name!r}")
    return acts[name]()


class TemporalBlock(nn.Module):
    """TAESD residual block (3 convs, identity skip, ReLU) with a TPM used when ``prev`` is given."""

    def __init__(self, cin: int, cout: int, act_fn: str):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1),
            _act(act_fn),
            nn.Conv2d(cout, cout, 3, padding=1),
            _act(act_fn),
            nn.Conv2d(cout, cout, 3, padding=1),
        )
        self.skip = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else nn.Identity()
        self.fuse = nn.ReLU()
        self.alpha = nn.Parameter(torch.tensor(0.5))
        self.temporal_processor = nn.Sequential(
            nn.Conv1d(cout, cout, 3, padding=1), nn.ReLU(), nn.Conv1d(cout, cout, 3, padding=1)
        )

    def tpm(self, f: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        """Temporal term G for conv-branch output ``f`` and paired previous feature ``prev`` (same shape)."""
        fp = F.avg_pool2d(f, TPM_POOL)  # (B, C, h', w')
        pp = F.avg_pool2d(prev.to(f.dtype), TPM_POOL)
        b, c, h, w = fp.shape
        n = h * w
        t = self.temporal_processor(torch.cat([fp.flatten(2), pp.flatten(2)], dim=2))  # (B, C, 2N)
        a = self.alpha.to(t.dtype)
        g = (a * t[..., :n] + (1 - a) * t[..., n:]).view(b, c, h, w)
        return F.interpolate(g, size=f.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor, prev: torch.Tensor | None = None) -> torch.Tensor:
        f = self.conv(x)
        if prev is not None:
            if prev.shape[-3:] != f.shape[-3:]:
                raise ValueError(f"TPM feature {tuple(prev.shape)} does not match block output {tuple(f.shape)}")
            f = f + TPM_SCALE * self.tpm(f, prev)
        return self.fuse(f + self.skip(x))


class TinyEncoder(nn.Module):
    def __init__(self, cfg: TAEConfig):
        super().__init__()
        layers: list[nn.Module] = []
        chans = cfg.encoder_block_out_channels
        for i, n in enumerate(cfg.num_encoder_blocks):
            c = chans[i]
            if i == 0:
                layers.append(nn.Conv2d(cfg.in_channels, c, 3, padding=1))
            else:
                layers.append(nn.Conv2d(chans[i - 1], c, 3, padding=1, stride=2, bias=False))
            layers.extend(TemporalBlock(c, c, cfg.act_fn) for _ in range(n))
        layers.append(nn.Conv2d(chans[-1], cfg.latent_channels, 3, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def block_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of every block, in encoder order (the final conv is not run)."""
        feats = []
        for layer in list(self.layers)[:-1]:
            x = layer(x)
            if isinstance(layer, TemporalBlock):
                feats.append(x)
        return feats


class TinyDecoder(nn.Module):
    def __init__(self, cfg: TAEConfig):
        super().__init__()
        chans = cfg.decoder_block_out_channels
        layers: list[nn.Module] = [nn.Conv2d(cfg.latent_channels, chans[0], 3, padding=1), _act(cfg.act_fn)]
        for i, n in enumerate(cfg.num_decoder_blocks):
            last = i == len(cfg.num_decoder_blocks) - 1
            c = chans[i]
            layers.extend(TemporalBlock(c, c, cfg.act_fn) for _ in range(n))
            if not last:
                layers.append(nn.Upsample(scale_factor=cfg.upsampling_scaling_factor, mode=cfg.upsample_fn))
            layers.append(nn.Conv2d(c, cfg.out_channels if last else c, 3, padding=1, bias=last))
        self.layers = nn.Sequential(*layers)

    @property
    def num_blocks(self) -> int:
        return sum(isinstance(m, TemporalBlock) for m in self.layers)

    def forward(self, z: torch.Tensor, features: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Latent ``(B, 4, h, w)`` -> image ``(B, 3, s*h, s*w)`` in about [-1, 1] (not clamped)."""
        if features is not None and len(features) != self.num_blocks:
            raise ValueError(f"TPM needs {self.num_blocks} features, got {len(features)}")
        x = torch.tanh(z / 3) * 3
        k = 0
        for layer in self.layers:
            if isinstance(layer, TemporalBlock):
                x = layer(x, None if features is None else features[k])
                k += 1
            else:
                x = layer(x)
        return x * 2 - 1


class TemporalAutoencoderTiny(nn.Module):
    """Encoder (used for TPM features) + temporal decoder. No I/O: weights are loaded by the pipeline."""

    def __init__(self, cfg: TAEConfig = TAEConfig()):
        super().__init__()
        self.cfg = cfg
        self.encoder = TinyEncoder(cfg)
        self.decoder = TinyDecoder(cfg)

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """TPM features of a [-1, 1] image, *without* the (x+1)/2 rescale, reversed to decoder order."""
        feats = self.encoder.block_features(image)
        if len(feats) != self.decoder.num_blocks:
            raise ValueError(f"encoder has {len(feats)} blocks, decoder {self.decoder.num_blocks}: cannot pair")
        return feats[::-1]

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """[-1, 1] image -> latent (TAESD encode: the input is rescaled to [0, 1] first)."""
        return self.encoder((image + 1) / 2)

    def decode(self, z: torch.Tensor, features: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Latent -> [-1, 1] image; ``features`` (from :meth:`features`) switch the TPM on."""
        return self.decoder(z / self.cfg.scaling_factor + self.cfg.shift_factor, features)
