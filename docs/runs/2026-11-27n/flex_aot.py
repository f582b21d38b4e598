# ruff: noqa
"""PyTorch's ahead-of-time capture of flex_attention with a BlockMask argument: captures and saves, then fails to load
(CPU, PyTorch 2.13, fourteenth session of 2026-11-27).  python3 flex_aot.py"""

import torch, time
from torch.nn.attention.flex_attention import BlockMask, flex_attention

B, H, L, d = 1, 2, 256, 64
q = torch.randn(B, H, L, d)
k = torch.randn(B, H, L, d)
v = torch.randn(B, H, L, d)
n = torch.full((B, H, 2), 2, dtype=torch.int32)
i = torch.arange(2, dtype=torch.int32).expand(B, H, 2, 2).contiguous()
bm = BlockMask.from_kv_blocks(torch.zeros_like(n), torch.zeros_like(i), n, i, BLOCK_SIZE=128, seq_lengths=(L, L))
with torch._dynamo.config.patch(enable_aot_compile=True):
    c = torch.compile(flex_attention, fullgraph=True, dynamic=False)
with torch.inference_mode():
    f = c.aot_compile(((q, k, v), {"block_mask": bm}))
    out = f(q, k, v, block_mask=bm)
    ref = flex_attention(q, k, v, block_mask=bm)
print("capture ok, max diff", float((out - ref).abs().max()))
f.save_compiled_function("/tmp/pc/flex.bin")
print("saved")
try:
    g = torch.compiler.load_compiled_function(open("/tmp/pc/flex.bin", "rb"))
    print("loaded")
except Exception as e:
    print("load failed:", type(e).__name__, str(e).splitlines()[0])
