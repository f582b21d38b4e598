#!/bin/bash
# twelfth session, call 13: the CLI again, flex (flash-attn-4 not on the path) then fa4 (disk cache warm)
source docs/runs/2026-11-27l/fa4_site.sh
FA=$PYTHONPATH:/tmp/avsite
FLEX=$PWD/src:/tmp/avsite
A="--model flashvsr --weights /tmp/w13 --compile --progress json --overwrite --encoder-opt preset=veryfast"
for run in flex fa4; do
  if [ $run = fa4 ]; then export PYTHONPATH=$FA; else export PYTHONPATH=$FLEX; fi
  timeout 130 python3 -m streamvsr.cli.main upscale /tmp/in.mp4 -o /tmp/out.mp4 $A > /tmp/p_$run.jsonl 2> $OUT/e13_$run.txt
  python3 bench/cli_run.py rate /tmp/p_$run.jsonl $run | tee -a $OUT/cli13.txt
done
