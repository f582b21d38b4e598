# ruff: noqa
"""The TCDecoder's sub-pixel weights from slices (this session) against the former tensor-constant einsum: bit for
bit in bf16 and fp16 (the GPU path), the last fp32 bit in places (another summation order).
python3 phase_taps_check.py"""

import torch
from streamvsr.models.flashvsr.fused import nearest2x_conv3x3_weight

TAPS = (((1.0, 0.0, 0.0), (0.0, 1.0, 1.0)), ((1.0, 1.0, 0.0), (0.0, 0.0, 1.0)))


def former(w):
    acc = torch.promote_types(w.dtype, torch.float32)
    m = torch.tensor(TAPS, dtype=acc)
    w2 = torch.einsum("aut,bvs,octs->abocuv", m, m, w.to(acc))
    return w2.reshape(4 * w.shape[0], w.shape[1], 2, 2).to(w.dtype)


g = torch.Generator().manual_seed(0)
for dt in (torch.float32, torch.bfloat16, torch.float16):
    w = torch.randn(256, 128, 3, 3, generator=g).to(dt)
    d = (former(w).float() - nearest2x_conv3x3_weight(w).float()).abs()
    print(dt, "max difference", d.max().item(), "elements differing", int((d > 0).sum()), "of", d.numel())
