"""The LCSA threshold on the GPU, on the steady-state shape of 768x1408 (12 heads, one query window, 66 blocks x 264
key blocks, k + 1 = 7920) and of 1080p (135 x 540, k + 1 = 16200): the sorted top-k (the first version), the
unsorted top-k + min (``kth_largest`` until the fifth session of 2026-11-27) and ``torch.kthvalue`` (the k-th
largest is the (n - k + 1)-th smallest), and since the sixth session the Triton radix select
(``radix_select.kth_largest_rows``, needs Triton). Each is checked against the sorted top-k first."""

# ruff: noqa: B023  (each lambda is called inside its loop iteration)
import torch

from streamvsr.models.flashvsr.radix_select import kth_largest_rows

for nb, nk, k in ((66, 264, 7920), (135, 540, 16200)):
    x = torch.rand(1, 12, 1, nb * nk, device="cuda")
    n = x.shape[-1]
    ref = torch.topk(x, k, dim=-1, sorted=True).values[..., k - 1 :]
    fns = {
        "sorted topk": lambda: torch.topk(x, k, dim=-1, sorted=True).values[..., k - 1 :],
        "topk + amin": lambda: torch.topk(x, k, dim=-1, sorted=False).values.amin(dim=-1, keepdim=True),
        "kthvalue": lambda: torch.kthvalue(x, n - k + 1, dim=-1, keepdim=True).values,
        "radix select (Triton)": lambda: kth_largest_rows(x, k),
        "radix select, rows split by 4096": lambda: kth_largest_rows(x, k, segment=4096),
        "radix select, rows split by 8192": lambda: kth_largest_rows(x, k, segment=8192),
    }
    for name, fn in fns.items():
        assert torch.equal(fn(), ref), name
        for _ in range(10):
            fn()
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(300):
            fn()
        e.record()
        torch.cuda.synchronize()
        us = s.elapsed_time(e) / 300 * 1000
        print(f"{n} values, k {k}: {name}: {us:.1f} us per call ({torch.cuda.get_device_name()})")
