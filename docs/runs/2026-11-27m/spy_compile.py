# ruff: noqa
"""Main-thread py-spy samples (raw format) under upscale_file, split into compile work (Dynamo tracing, Inductor's
cache loads, Triton's first launches) by the streamvsr function that triggered it, and everything else.
python3 spy_compile.py RAW"""

import collections
import sys

OURS = (
    "flashvsr.py",
    "tcdecoder",
    "dit.py",
    "lq_proj",
    "attention.py",
    "fused.py",
    "frame_kernels",
    "block_kernels",
    "radix",
)
cats = collections.Counter()
tot = 0
for line in open(sys.argv[1]):
    stack, _, n = line.rstrip("\n").rpartition(" ")
    if not stack.startswith("_run_module_as_main") or "upscale_file" not in stack:
        continue
    n = int(n)
    tot += n
    raw = stack.split(";")
    hits = [k for k, f in enumerate(raw) if "convert_frame.py" in f or "triton/" in f]
    if not hits:
        cats[("not compile", "")] += n
        continue
    i = min(hits)
    fr = [f.split(" (")[0] + " " + f.split("/")[-1] for f in raw]
    ours = [f for f in fr[:i] if any(s in f for s in OURS)]
    kind = "inductor" if "_inductor" in stack else ("dynamo" if "convert_frame.py" in stack else "triton")
    cats[((ours[-1] if ours else "?")[:90], kind)] += n
print(f"main-thread samples under upscale_file: {tot} (100 per second)")
for c, n in cats.most_common(30):
    print(f"{n:6d} {c[1]:9s} {c[0]}")
