#!/usr/bin/env bash
# The CLI end to end with this session's defaults (the TCDecoder's tail one frame at a time, the bf16 FFN GELU in
# the GEMM epilogue): a 3200-frame 352x192 H.264 clip to 1408x768 with random official-size weights, --compile,
# bf16 and then --fp8, x264 preset veryfast. Each variant first runs a 49-frame clip (fills the compile caches);
# the progress lines of the timed run give the time to the first output frame and the rate from frame 400 on.
set -e
export PYTHONPATH=/tmp/site:$PWD/src
N=${N:-3200}
python3 bench/cli_run.py prepare --frames "$N"
for v in bf16 fp8; do
  A="--model flashvsr --weights /tmp/w13 --compile --progress json --overwrite --encoder-opt preset=veryfast"
  [ $v = fp8 ] && A="$A --fp8"
  python3 -m streamvsr.cli.main upscale /tmp/warm.mp4 -o /tmp/warm.out.mp4 $A > /dev/null 2>&1
  python3 -m streamvsr.cli.main upscale /tmp/in.mp4 -o /tmp/out.mp4 $A > /tmp/p_$v.jsonl 2> /tmp/e_$v.txt || true
  python3 bench/cli_run.py rate /tmp/p_$v.jsonl "$v"
done
