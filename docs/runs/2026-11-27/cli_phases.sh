#!/usr/bin/env bash
# The CLI end to end with this session's defaults (the TCDecoder's tail one frame at a time, the bf16 FFN GELU in
# the GEMM epilogue): a 3200-frame 352x192 H.264 clip to 1408x768 with random official-size weights, --compile,
# bf16 and then --fp8, x264 preset veryfast. Each variant first runs a 49-frame clip (fills the compile caches);
# the progress lines of the timed run give the time to the first output frame and the rate from frame 400 on.
set -e
export PYTHONPATH=/tmp/site:$PWD/src
N=${N:-3200}
python3 scripts/make_random_model.py /tmp/w13 --size official-1.3b --device cuda > /dev/null
python3 -c "import sys; sys.path.insert(0, 'bench'); from multigpu import write_video; from pathlib import Path; write_video(Path('/tmp/in.mp4'), $N, 192, 352, 0); write_video(Path('/tmp/warm.mp4'), 49, 192, 352, 1)"
for v in bf16 fp8; do
  A="--model flashvsr --weights /tmp/w13 --compile --progress json --overwrite --encoder-opt preset=veryfast"
  [ $v = fp8 ] && A="$A --fp8"
  python3 -m streamvsr.cli.main upscale /tmp/warm.mp4 -o /tmp/warm.out.mp4 $A > /dev/null 2>&1
  python3 -m streamvsr.cli.main upscale /tmp/in.mp4 -o /tmp/out.mp4 $A > /tmp/p_$v.jsonl 2> /tmp/e_$v.txt || true
  python3 - "$v" <<'PY'
import json, sys
rows = []
for line in open(f"/tmp/p_{sys.argv[1]}.jsonl"):
    try:
        rows.append(json.loads(line))
    except ValueError:
        pass
rows = [r for r in rows if "frames" in r]
first = next(r for r in rows if r["frames"] >= 1)
a = next(r for r in rows if r["frames"] >= 400)
z = rows[-1]
rate = (z["frames"] - a["frames"]) / (z["elapsed"] - a["elapsed"])
print(f"{sys.argv[1]}: {z['frames']} frames, fps {z['fps']}, first output at {first['elapsed']:.2f} s, "
      f"frames 400..{z['frames']}: {rate:.2f} fps")
PY
done
