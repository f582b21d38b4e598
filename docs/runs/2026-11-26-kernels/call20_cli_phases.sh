#!/usr/bin/env bash
# Where the CLI's time goes: the progress lines of one run (this session's code, --compile --fp8) give the time
# to the first output frame and the rate after it; a second run with x264's ultrafast preset tests the encoder.
set -e
export PYTHONPATH=/tmp/site:$PWD/src
N=${N:-3200}
python3 bench/cli_run.py prepare --frames "$N"
A="--model flashvsr --weights /tmp/w13 --compile --fp8 --progress json --overwrite"
python3 -m streamvsr.cli.main upscale /tmp/warm.mp4 -o /tmp/warm.mp4.out.mp4 $A --encoder-opt preset=veryfast > /dev/null 2>&1
for preset in veryfast ultrafast; do
  python3 -m streamvsr.cli.main upscale /tmp/in.mp4 -o /tmp/out.mp4 $A --encoder-opt preset=$preset > /tmp/p_$preset.jsonl 2> /tmp/e_$preset.txt || true
  python3 bench/cli_run.py rate /tmp/p_$preset.jsonl "$preset"
done
