"""Medians of the metrics in an Nsight Compute CSV log (``ncu --csv --metrics ... --log-file F``, optionally xz-packed)
over the launches of one grid size (default 792: the steady 768x1408 attention call), the last ``--last`` of them.

    python3 scripts/ncu_summary.py docs/runs/2026-11-27k/ncu5.csv.xz [--grid 792] [--last 120]
"""

from __future__ import annotations

import argparse
import collections
import csv
import io
import lzma
import statistics


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("log")
    p.add_argument("--grid", default="792", help="launch__grid_size of the launches to keep")
    p.add_argument("--last", type=int, default=120)
    a = p.parse_args()
    opener = lzma.open if a.log.endswith(".xz") else open
    with opener(a.log, "rt") as f:
        rows = list(csv.reader(io.StringIO(f.read())))
    head = next(i for i, r in enumerate(rows) if r and r[0] == "ID")
    h = rows[head]
    col = {name: h.index(name) for name in ("ID", "Kernel Name", "Metric Name", "Metric Unit", "Metric Value")}
    by: dict[int, dict[str, str]] = collections.defaultdict(dict)
    units, names = {}, {}
    for r in rows[head + 1 :]:
        if len(r) <= col["Metric Value"]:
            continue
        i = int(r[col["ID"]])
        by[i][r[col["Metric Name"]]] = r[col["Metric Value"]]
        units[r[col["Metric Name"]]] = r[col["Metric Unit"]]
        names[i] = r[col["Kernel Name"]]
    ids = [i for i in sorted(by) if by[i].get("launch__grid_size") == a.grid][-a.last :]
    if not ids:
        raise SystemExit(f"no launch of grid size {a.grid} in {a.log}")
    print(f"{a.log}: {sorted({names[i] for i in ids})}, {len(ids)} launches of grid {a.grid}")
    for m in sorted(by[ids[0]]):
        vals = [float(by[i][m].replace(",", "")) for i in ids]
        med = statistics.median(vals)
        print(f"  {m:72s} {units[m]:16s} median {med:14.3f}  min {min(vals):14.3f}  max {max(vals):14.3f}")


if __name__ == "__main__":
    main()
