# ruff: noqa
"""The tiny random FlashVSR model in eager mode on the CPU: bf16 against fp32, and bf16 against bf16 with the input
moved by 1e-3 (max abs difference, share of output values off by more than 0.03). python3 bf16_chaos.py"""

import torch
from streamvsr.models.flashvsr.config import SIZES
from streamvsr.pipeline.flashvsr import FlashVSRUpscaler

x = torch.rand(33, 3, 32, 32, generator=torch.Generator().manual_seed(4))


def run(dtype, xin):
    up = FlashVSRUpscaler.from_config(SIZES["tiny"], init_seed=0, device="cpu", dtype=dtype)
    with torch.inference_mode():
        up.reset()
        return torch.cat([up.push(xin), up.flush()]).float()


a = run(torch.bfloat16, x)
b = run(torch.float32, x)
c = run(torch.bfloat16, (x + 1e-3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1))
for name, o in (("bf16 vs fp32", b), ("bf16 vs bf16 input+1e-3", c)):
    d = (a - o).abs()
    print(name, "max", d.max().item(), "frac>0.03", (d > 0.03).float().mean().item())
