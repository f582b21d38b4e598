"""The LCSA threshold on the GPU: sorted top-k (as before) against unsorted top-k + min (kth_largest), on the
steady-state shape of 768x1408 (12 heads, one query window, 66 blocks x 264 key blocks, k + 1 = 7920)."""

import torch

from streamvsr.models.flashvsr.attention import kth_largest

x = torch.rand(1, 12, 1, 66 * 264, device="cuda")
k = 7920
ref = torch.topk(x, k, dim=-1, sorted=True).values[..., k - 1 :]
assert torch.equal(kth_largest(x, k), ref)
for name, fn in (
    ("sorted topk", lambda: torch.topk(x, k, dim=-1, sorted=True).values[..., k - 1 :]),
    ("kth_largest", lambda: kth_largest(x, k)),
):
    for _ in range(10):
        fn()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(300):
        fn()
    e.record()
    torch.cuda.synchronize()
    print(f"{name}: {s.elapsed_time(e) / 300 * 1000:.1f} us per call ({torch.cuda.get_device_name()})")
