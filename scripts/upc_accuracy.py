"""How much the TCDecoder's sub-pixel upsampling (``TCDecoder.subpixel_upsample``, fused.nearest2x_conv3x3) adds to
the decoder's bf16 rounding error, on the CPU: the official-width decoder with random weights (rounded to bf16
first, so every run has the same weights), a 2-latent clip of 96x128 output, against a float64 run. The summed
taps of the sub-pixel weights are rounded to bf16 once more; this shows what that costs next to bf16 itself."""

import math

import torch

from streamvsr.models.flashvsr.config import TCDecoderConfig
from streamvsr.models.flashvsr.tcdecoder import TCDecoder

torch.manual_seed(0)
state = {}
for k, v in TCDecoder(TCDecoderConfig()).state_dict().items():
    w = torch.randn_like(v) / math.sqrt(v[0].numel()) if v.dim() > 1 else torch.randn_like(v) * 0.01
    state[k] = w.to(torch.bfloat16).float()
lat = torch.randn(1, 16, 2, 12, 16)
lr = torch.rand(1, 3, 5, 96, 128) * 2 - 1


def run(dtype: torch.dtype, subpixel: bool) -> torch.Tensor:
    d = TCDecoder(TCDecoderConfig()).eval().to(dtype)
    d.load_state_dict({k: v.to(dtype) for k, v in state.items()})
    d.subpixel_upsample = subpixel
    with torch.no_grad():
        return d(lat.to(dtype), lr.to(dtype)).double()


ref = run(torch.float64, False)
for dtype, subpixel in ((torch.float32, True), (torch.bfloat16, False), (torch.bfloat16, True)):
    mse = (run(dtype, subpixel) - ref).pow(2).mean().item()
    name = f"{str(dtype).removeprefix('torch.')}, {'sub-pixel' if subpixel else 'upsample + conv'}"
    print(f"{name}: {10 * math.log10(4 / mse):.2f} dB PSNR against float64 (range 2)")
