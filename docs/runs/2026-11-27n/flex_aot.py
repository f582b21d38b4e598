# ruff: noqa
"""PyTorch's ahead-of-time capture of FlexAttention (CPU, PyTorch 2.13; fourteenth session of 2026-11-27).

1. flex_attention with a BlockMask argument: captures and saves, then fails to load (the unpickled guards hold an
   ImportSource, which asks for a tracing context).
2. A function of plain tensors (the block lists; the BlockMask built in the graph): captures, saves, and loads when
   the load runs inside a TracingContext and in inference mode, as the capture ran. The compiled results differ from
   the eager reference where blocks are dropped (FlexAttention's eager path ignores the block lists) and match it
   where all blocks are kept.

python3 flex_aot.py
"""

import torch
from torch._guards import TracingContext, tracing
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.nn.attention.flex_attention import BlockMask, flex_attention

B, H, L, d = 1, 2, 256, 64
q, k, v = (torch.randn(B, H, L, d) for _ in range(3))
idx = torch.arange(2, dtype=torch.int32).expand(B, H, 2, 2).contiguous()
one, two = (torch.full((B, H, 2), n, dtype=torch.int32) for n in (1, 2))  # 1 or 2 key blocks per query block


def mask(num):
    return BlockMask.from_kv_blocks(
        torch.zeros_like(num), torch.zeros_like(idx), num, idx, BLOCK_SIZE=128, seq_lengths=(L, L)
    )


def flex_lists(q, k, v, num, idx, block: int):
    bm = BlockMask.from_kv_blocks(
        torch.zeros_like(num),
        torch.zeros_like(idx),
        num,
        idx,
        BLOCK_SIZE=block,
        seq_lengths=(q.shape[2], k.shape[2]),
        compute_q_blocks=False,
    )
    return flex_attention(q, k, v, block_mask=bm)


def capture(fn, args, kwargs, path):
    with torch._dynamo.config.patch(enable_aot_compile=True):
        c = torch.compile(fn, fullgraph=True, dynamic=False)
    with torch.inference_mode():
        f = c.aot_compile((args, kwargs))
        f(*args, **kwargs)
    f.save_compiled_function(path)
    print(fn.__name__, "captured and saved")


def load(path, in_context):
    ctx = tracing(TracingContext(FakeTensorMode())) if in_context else torch.inference_mode(False)
    try:
        with torch.inference_mode(), ctx:
            g = torch.compiler.load_compiled_function(open(path, "rb"))
        print("  loaded", "in a TracingContext" if in_context else "")
        return g
    except Exception as e:
        print("  load failed:", type(e).__name__, str(e).splitlines()[0])


capture(flex_attention, (q, k, v), {"block_mask": mask(two)}, "/tmp/flex1.bin")
load("/tmp/flex1.bin", False)
capture(flex_lists, (q, k, v, one, idx, 128), {}, "/tmp/flex2.bin")
load("/tmp/flex2.bin", False)
g = load("/tmp/flex2.bin", True)
with torch.inference_mode():
    for name, num in (("1 of 2 key blocks", one), ("all key blocks", two)):
        ok = g.guard_check(q, k, v, num, idx, 128)
        diff = float((g(q, k, v, num, idx, 128) - flex_attention(q, k, v, block_mask=mask(num))).abs().max())
        print(f"  {name}: guards {ok}, max difference to the eager reference {diff:.3g}")
