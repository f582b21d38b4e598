# ruff: noqa
"""Python's import work in a py-spy speedscope profile (the first thread's samples): seconds spent compiling
source to bytecode (`SourceLoader.source_to_code`) and inside imports within the first UNTIL seconds; then, for the
samples under ANCHOR, the inclusive seconds of each module's top-level code (its import) and the leaf frames.
python3 spy_imports.py FILE [--until 38] [--anchor DiskCompiled._prepare] [--top 20]"""

import argparse
import collections
import json

ap = argparse.ArgumentParser()
ap.add_argument("file")
ap.add_argument("--until", type=float, default=1e9)
ap.add_argument("--anchor", default="")
ap.add_argument("--top", type=int, default=20)
a = ap.parse_args()
d = json.load(open(a.file))
fr = d["shared"]["frames"]
p = d["profiles"][0]
t = s2c = imp = tot = 0.0
inc, leaf = collections.Counter(), collections.Counter()
for st, w in zip(p["samples"], p["weights"]):
    t += w
    if t > a.until:
        break
    names = [
        f"{fr[i]['name']} ({fr[i].get('file', '?').split('site-packages/')[-1]}:{fr[i].get('line', '?')})" for i in st
    ]
    if any(n.startswith("SourceLoader.source_to_code") for n in names):
        s2c += w
    if any(n.startswith("_find_and_load ") for n in names):
        imp += w
    k = next((j for j, n in enumerate(names) if n.startswith(a.anchor)), None) if a.anchor else None
    if k is None:
        continue
    tot += w
    seen = set()
    for n in names[k + 1 :]:
        key = n.rsplit(":", 1)[0]
        if n.startswith("<module>") and key not in seen:
            seen.add(key)
            inc[key] += w
    leaf[" <- ".join(reversed(names[-2:]))] += w
print(f"{p['name']}: first {min(t, a.until):.2f} s: compiling source {s2c:.2f} s, inside imports {imp:.2f} s")
if a.anchor:
    print(f"under {a.anchor}: {tot:.2f} s; modules' top-level code (inclusive):")
    for n, w in inc.most_common(a.top):
        print(f"{w:6.2f} {n}")
    print("leaves:")
    for n, w in leaf.most_common(5):
        print(f"{w:6.2f} {n}")
