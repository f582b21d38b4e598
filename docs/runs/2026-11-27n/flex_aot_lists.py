# ruff: noqa
"""The capture of a FlexAttention call whose inputs are plain tensors (the block lists; the BlockMask is built in the
graph): captures, saves, and loads when the load runs inside a TracingContext (PyTorch 2.13 on the CPU unpickles an
ImportSource guard that asks for one) and inside inference mode, as the capture ran. The compiled results differ from
the eager reference where blocks are dropped (FlexAttention's eager path ignores the block lists) and match it where
all blocks are kept. Fourteenth session of 2026-11-27.  python3 flex_aot_lists.py"""

import torch
from torch.nn.attention.flex_attention import BlockMask, flex_attention


def flex_lists(q, k, v, num, idx, block: int, kernel_options: dict | None = None):
    bm = BlockMask.from_kv_blocks(
        torch.zeros_like(num),
        torch.zeros_like(idx),
        num,
        idx,
        BLOCK_SIZE=block,
        seq_lengths=(q.shape[2], k.shape[2]),
        compute_q_blocks=False,
    )
    return flex_attention(q, k, v, block_mask=bm, kernel_options=kernel_options)


B, H, L, d = 1, 2, 256, 64
q = torch.randn(B, H, L, d)
k = torch.randn(B, H, L, d)
v = torch.randn(B, H, L, d)
n = torch.full((B, H, 2), 1, dtype=torch.int32)
i = torch.arange(2, dtype=torch.int32).expand(B, H, 2, 2).contiguous()
n2 = torch.full((B, H, 2), 2, dtype=torch.int32)
with torch._dynamo.config.patch(enable_aot_compile=True):
    c = torch.compile(flex_lists, fullgraph=True, dynamic=False)
with torch.inference_mode():
    f = c.aot_compile(((q, k, v, n, i, 128), {}))
    out = f(q, k, v, n, i, 128)
    bm = BlockMask.from_kv_blocks(torch.zeros_like(n), torch.zeros_like(i), n, i, BLOCK_SIZE=128, seq_lengths=(L, L))
    ref = flex_attention(q, k, v, block_mask=bm)
print("capture ok, max diff", float((out - ref).abs().max()))
f.save_compiled_function("/tmp/pc/flex2.bin")
print("saved")
from torch._guards import TracingContext, tracing
from torch._subclasses.fake_tensor import FakeTensorMode

with torch.inference_mode(), tracing(TracingContext(FakeTensorMode())):
    g = torch.compiler.load_compiled_function(open("/tmp/pc/flex2.bin", "rb"))
    print("loaded")
with torch.inference_mode():
    print("guard", g.guard_check(q, k, v, n, i, 128), float((g(q, k, v, n, i, 128) - ref).abs().max()))
    bm2 = BlockMask.from_kv_blocks(torch.zeros_like(n2), torch.zeros_like(i), n2, i, BLOCK_SIZE=128, seq_lengths=(L, L))
    print("other lists", float((g(q, k, v, n2, i, 128) - flex_attention(q, k, v, block_mask=bm2)).abs().max()))
