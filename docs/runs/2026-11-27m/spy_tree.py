# ruff: noqa
"""Summarise py-spy raw (collapsed) stacks under one anchor frame: inclusive samples per frame path, depth by depth.
python3 spy_tree.py RAW [--anchor upscale_file] [--depth 8] [--min 0.01]"""

import argparse
import collections

ap = argparse.ArgumentParser()
ap.add_argument("raw")
ap.add_argument("--anchor", default="upscale_file")
ap.add_argument("--depth", type=int, default=8)
ap.add_argument("--min", type=float, default=0.01)
a = ap.parse_args()
tree = collections.Counter()
total = 0
for line in open(a.raw):
    line = line.rstrip("\n")
    if not line:
        continue
    stack, _, n = line.rpartition(" ")
    n = int(n)
    frames = stack.split(";")
    idx = next((i for i, f in enumerate(frames) if f.startswith(a.anchor + " ")), None)
    if idx is None:
        continue
    total += n
    path = []
    for f in frames[idx + 1 : idx + 1 + a.depth]:
        path.append(f.split(" (")[0] + " (" + f.split(" (")[-1].split("/")[-1] if " (" in f else f)
        tree[tuple(path)] += n
print(f"samples under {a.anchor}: {total}")
for path, n in sorted(tree.items()):
    if n >= a.min * total:
        print(f"{n:7d} {100 * n / total:5.1f}% " + "  " * (len(path) - 1) + path[-1])
