# ruff: noqa
"""How each compiled part got its graphs in this process (DiskCompiled events), and the time to the first output
chunk: load_model("flashvsr", compile=True) on a random 49-frame 192x352 clip. Since 2026-11-28 it also lists
FlexAttention's events where its hook is on (STREAMVSR_PRECOMPILE_FLEX=1); the output is otherwise as before.
python3 probe_events.py WEIGHTS"""

import collections, sys, time
import torch

t0 = time.perf_counter()
from streamvsr.models.flashvsr import attention as A
from streamvsr.pipeline.registry import load_model
from streamvsr.pipeline.precompile import DiskCompiled

dev = "cuda" if torch.cuda.is_available() else "cpu"
up = load_model("flashvsr", weights=sys.argv[1], compile=True, device=torch.device(dev))
t1 = time.perf_counter()
x = torch.rand(49, 3, 192, 352, generator=torch.Generator().manual_seed(0)).to(dev)
with torch.inference_mode():
    up.reset()
    first = up.push(x[:25])
    if dev == "cuda":
        torch.cuda.synchronize()
    t2 = time.perf_counter()
    up.push(x[25:]), up.flush()
    if dev == "cuda":
        torch.cuda.synchronize()
t3 = time.perf_counter()
parts = [b.__dict__[n] for b in up.dit.blocks for n in ("pre", "post")]
for w in (up.decoder.__dict__["_run"], up.lq_proj.__dict__["_steady"]):
    parts += [c.cell_contents for c in w.__closure__ if isinstance(c.cell_contents, DiskCompiled)]
parts += [r for r in A._FLEX_RUNNERS.values() if isinstance(r, DiskCompiled)]
ev = collections.Counter((p.tag, e) for p in parts for e in p.events)
print(f"import+load {t1 - t0:.2f}s  first chunk {t2 - t1:.2f}s  rest {t3 - t2:.2f}s")
for k, v in sorted(ev.items()):
    print(v, *k)
