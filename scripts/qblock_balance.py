"""How evenly the LCSA attention kernel's work is spread over its thread blocks, and what the launch order does.

FlexAttention runs one thread block per (query block, head); the GPU starts them in launch order as SMs free up.
This script selects blocks as the model does (``select_blocks`` on random block means of the official head size,
one steady call: one query window against four key windows) and replays a greedy schedule on 132 SMs (an H100),
one thread block per SM, each taking its count of key blocks plus a fixed start cost. It prints the spread of the
counts, their correlation with the count of key blocks the local mask leaves visible, and the schedule's length
against a perfectly balanced one for four orders: the token (row-major) order, each head sorted most work first,
and the two fixed orders by visible key blocks. CPU only; used for docs/performance.md (sixth session of
2026-11-27).

    python scripts/qblock_balance.py
"""

from __future__ import annotations

import heapq

import torch

from streamvsr.models.flashvsr.attention import make_plan, select_blocks
from streamvsr.models.flashvsr.config import AttentionConfig


def makespan(work: list[float], sms: int = 132, start_cost: float = 4.0) -> float:
    """Greedy list schedule in the given order: each item starts on the SM that frees up first."""
    free = [0.0] * sms
    for w in work:
        heapq.heappush(free, heapq.heappop(free) + w + start_cost)
    return max(free)


def main() -> None:
    torch.manual_seed(0)
    for out_h, out_w in ((768, 1408), (1152, 1920)):  # 1080p is padded to whole 128-pixel blocks
        attn = AttentionConfig(backend="dense")  # the plan in the grid's row-major order
        plan = make_plan(out_h // 16, out_w // 16, attn, torch.device("cpu"))
        visible = plan.local.sum(-1).float()  # (nb,) key blocks per window a query block may use
        vis = torch.ones(1, 4, dtype=torch.bool)
        names = ("token order", "per head, most first", "fewest visible first", "most visible first")
        ratios: dict[str, list[float]] = {name: [] for name in names}
        corr, lo, hi, mean = [], [], [], []
        for _ in range(5):
            shared = torch.randn(1, 12, 1, 128)  # block means share a per-head component, as real tokens do
            q = 0.3 * torch.randn(1, 12, plan.nb, 128) + shared
            k = 0.3 * torch.randn(1, 12, 4 * plan.nb, 128) + shared
            cnt = select_blocks(q, k, plan, vis)[0].sum(-1).float()  # (heads, nb)
            balanced = (cnt + 4.0).sum().item() / 132
            ratios["token order"].append(makespan(cnt.flatten().tolist()) / balanced)
            per_head = [c for h in range(cnt.shape[0]) for c in sorted(cnt[h].tolist(), reverse=True)]
            ratios["per head, most first"].append(makespan(per_head) / balanced)
            for name, desc in (("fewest visible first", False), ("most visible first", True)):
                order = torch.argsort(visible, descending=desc, stable=True)
                ratios[name].append(makespan(cnt[:, order].flatten().tolist()) / balanced)
            corr.append(torch.stack([torch.corrcoef(torch.stack([c, visible]))[0, 1] for c in cnt]).mean().item())
            lo.append(cnt.min().item())
            hi.append(cnt.max().item())
            mean.append(cnt.mean().item())
        n = len(corr)
        print(
            f"{out_h}x{out_w}: {plan.nb} blocks per window, key blocks per query block {min(lo):.0f} to {max(hi):.0f}"
            f" (mean {sum(mean) / n:.1f}) of {4 * plan.nb}; correlation with the visible count {sum(corr) / n:.2f}"
        )
        for name, r in ratios.items():
            print(f"  {name:<24} {sum(r) / len(r):.3f} x the balanced schedule")


if __name__ == "__main__":
    main()
