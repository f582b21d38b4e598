# ruff: noqa
"""Dynamo's trace time of the compiled TCDecoder (tiny size, CPU, backend "eager": the trace alone), with the
per-frame tail (tail_frames 1) or all frames at once (none), optionally with the GPU path's fused-op switches.
python3 decoder_trace.py 1|none [fused_conv_relu fused_memblocks out_by_taps subpixel_upsample]"""

import sys, time, torch
import torch._dynamo
from torch._dynamo.utils import get_compilation_metrics
from streamvsr.pipeline.flashvsr import FlashVSRUpscaler, compile_decoder
from streamvsr.models.flashvsr.config import SIZES

tf = None if sys.argv[1] == "none" else int(sys.argv[1])
up = FlashVSRUpscaler.from_config(SIZES["tiny"], init_seed=0)
dec = up.decoder
dec.tail_frames = tf
for k in sys.argv[2:]:
    setattr(dec, k, True)
x = torch.rand(33, 3, 64, 64)


def stream():
    with torch.inference_mode():
        up.reset()
        up.push(x)
        up.flush()


stream()
compile_decoder(dec, backend="eager")
stream()
for m in get_compilation_metrics():
    print(tf, sys.argv[2:], m.co_name, round(m.entire_frame_compile_time_s, 2), m.graph_op_count, m.guard_count)
