#!/bin/bash
# thirteenth session, call 1 (one H100, FlexAttention, no flash-attn-4): where a process's first video goes.
# Cold run (fills the compile caches), then `streamvsr batch` of 3 x 600 frames in one process (per-video
# seconds), then a profiled warm run on the 49-frame clip (cProfile + dynamo compile times + recompiles).
mkdir -p /tmp/avsite && tar -xJf .whl/avsite.tar.xz -C /tmp/avsite
export PYTHONPATH=$PWD/src:/tmp/avsite PYTHONUNBUFFERED=1
D=docs/runs/2026-11-27m
timeout 150 python3 bench/cli_run.py prepare --frames 600 2>&1 | tail -3
A="--model flashvsr --weights /tmp/w13 --compile --progress json --overwrite --encoder-opt preset=veryfast"
B="--model flashvsr --weights /tmp/w13 --compile --encoder-opt preset=veryfast"
t0=$(date +%s%N)
timeout 330 python3 -m streamvsr.cli.main upscale /tmp/warm.mp4 -o /tmp/warm.out.mp4 $A > /dev/null 2> $OUT/cold1.txt
echo "cold run $(( ($(date +%s%N) - t0) / 1000000 )) ms" | tee $OUT/times1.txt
mkdir -p /tmp/bin && for v in a b c; do cp /tmp/in.mp4 /tmp/bin/$v.mp4; done
t0=$(date +%s%N)
timeout 120 python3 -m streamvsr.cli.main batch /tmp/bin /tmp/bout $B 2>&1 | grep -v -i warn | tee -a $OUT/times1.txt
echo "batch 3 x 600 wall $(( ($(date +%s%N) - t0) / 1000000 )) ms" | tee -a $OUT/times1.txt
TORCH_LOGS=recompiles timeout 90 python3 $D/prof_cli.py $OUT/prof1 upscale /tmp/warm.mp4 -o /tmp/warm.out.mp4 $A \
  > /tmp/pw.jsonl 2> $OUT/e1_prof.txt
python3 bench/cli_run.py rate /tmp/pw.jsonl prof --after 1 2>&1 | tee -a $OUT/times1.txt
head -60 $OUT/prof1.txt
