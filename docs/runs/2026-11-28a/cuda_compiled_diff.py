# ruff: noqa
"""The tiny upscaler on CUDA: eager against compiled (DiT, decoder, LQ projector), with the GPU decoder ops on,
disk cache as $STREAMVSR_COMPILE_CACHE says; max abs difference and share of elements off by > 0.03, per part.
python3 cuda_compiled_diff.py [dit,dec,lq]"""

import sys
import torch
from streamvsr.models.flashvsr.config import SIZES
from streamvsr.pipeline.flashvsr import FlashVSRUpscaler, compile_decoder, compile_dit, compile_lq_proj

parts = (sys.argv[1] if len(sys.argv) > 1 else "dit,dec,lq").split(",")
up = FlashVSRUpscaler.from_config(SIZES["tiny"], init_seed=0, device="cuda")
dec = up.decoder
dec.fused_conv_relu = dec.fused_memblocks = dec.out_by_taps = dec.subpixel_upsample = True
x = torch.rand(33, 3, 32, 32, generator=torch.Generator().manual_seed(4)).cuda()
print("dtype", next(up.dit.parameters()).dtype)
with torch.inference_mode():
    up.reset()
    ref = torch.cat([up.push(x), up.flush()])
    up.reset()
    ref2 = torch.cat([up.push(x), up.flush()])
    print("eager twice", (ref - ref2).abs().max().item())
    if "dit" in parts:
        compile_dit(up.dit)
    if "dec" in parts:
        compile_decoder(up.decoder)
    if "lq" in parts:
        compile_lq_proj(up.lq_proj)
    for i in range(2):
        up.reset()
        out = torch.cat([up.push(x), up.flush()])
        d = (out - ref).abs()
        print(
            parts,
            i,
            "max",
            d.max().item(),
            "frac>0.03",
            (d > 0.03).float().mean().item(),
            "per frame max",
            [round(v, 3) for v in d.flatten(1).amax(1).tolist()],
        )
