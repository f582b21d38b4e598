# ruff: noqa
"""Where a thread's time went between two moments: py-spy speedscope JSON (`py-spy record --idle -f speedscope`),
samples in order; an inclusive tree of the frames under ANCHOR for samples in [--since, --until) seconds from the
thread's first sample. Prints every thread's sample count first.
python3 spy_window.py FILE [--thread NAME] [--since 0] [--until 1e9] [--anchor main] [--depth 10] [--min 0.02]"""

import argparse
import collections
import json

ap = argparse.ArgumentParser()
ap.add_argument("file")
ap.add_argument("--thread", default="", help="a substring of the thread profile's name (default: every thread)")
ap.add_argument("--since", type=float, default=0.0)
ap.add_argument("--until", type=float, default=1e9)
ap.add_argument("--anchor", default="")
ap.add_argument("--depth", type=int, default=10)
ap.add_argument("--min", type=float, default=0.02)
ap.add_argument("--rate", type=float, default=100.0, help="py-spy's sampling rate (-r)")
a = ap.parse_args()
d = json.load(open(a.file))
frames = d["shared"]["frames"]
for p in d["profiles"]:
    print(f"thread {p['name']!r}: {len(p['samples'])} samples, unit {p.get('unit')}")


def label(i):
    f = frames[i]
    return f"{f['name']} ({f.get('file', '?').split('/')[-1]}:{f.get('line', '?')})"


for p in d["profiles"]:
    if a.thread not in p["name"]:
        continue
    tree, total, t = collections.Counter(), 0, 0.0
    weights = p.get("weights") or [1] * len(p["samples"])
    secs = p.get("unit") == "seconds"
    for st, w in zip(p["samples"], weights):
        dt = w if secs else w / a.rate
        t0, t = t, t + dt
        if not (a.since <= t0 < a.until):
            continue
        names = [label(i) for i in st]
        idx = next((k for k, n in enumerate(names) if n.startswith(a.anchor)), None) if a.anchor else -1
        if idx is None:
            continue
        total += dt
        for k in range(1, a.depth + 1):
            if idx + k >= len(names):
                break
            tree[tuple(names[idx + 1 : idx + 1 + k])] += dt
    print(
        f"== {p['name']}: {total:.2f} s in [{a.since}, {min(a.until, t):.2f}) of {t:.2f} s, under {a.anchor or 'root'}"
    )
    for path, n in sorted(tree.items()):
        if n >= a.min * max(total, 1e-9):
            print(f"{n:7.2f}s {100 * n / total:5.1f}% " + "  " * (len(path) - 1) + path[-1])
