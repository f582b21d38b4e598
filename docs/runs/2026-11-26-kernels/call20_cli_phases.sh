#!/usr/bin/env bash
# Where the CLI's time goes: the progress lines of one run (this session's code, --compile --fp8) give the time
# to the first output frame and the rate after it; a second run with x264's ultrafast preset tests the encoder.
set -e
export PYTHONPATH=/tmp/site:$PWD/src
N=${N:-3200}
python3 scripts/make_random_model.py /tmp/w13 --size official-1.3b --device cuda > /dev/null
python3 -c "import sys; sys.path.insert(0, 'bench'); from multigpu import write_video; from pathlib import Path; write_video(Path('/tmp/in.mp4'), $N, 192, 352, 0); write_video(Path('/tmp/warm.mp4'), 49, 192, 352, 1)"
A="--model flashvsr --weights /tmp/w13 --compile --fp8 --progress json --overwrite"
python3 -m streamvsr.cli.main upscale /tmp/warm.mp4 -o /tmp/warm.mp4.out.mp4 $A --encoder-opt preset=veryfast > /dev/null 2>&1
for preset in veryfast ultrafast; do
  python3 -m streamvsr.cli.main upscale /tmp/in.mp4 -o /tmp/out.mp4 $A --encoder-opt preset=$preset > /tmp/p_$preset.jsonl 2> /tmp/e_$preset.txt || true
  python3 - "$preset" <<'PY'
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
