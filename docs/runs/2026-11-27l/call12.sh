#!/bin/bash
# twelfth session, call 12: the CLI with FA4 twice more, now with the package's kernel cache on disk (fa4.py sets
# FLASH_ATTENTION_CUTE_DSL_CACHE_ENABLED=1 unless the caller chose): the first process fills it, the second reads it
source docs/runs/2026-11-27l/fa4_site.sh
export PYTHONPATH=$PYTHONPATH:/tmp/avsite
A="--model flashvsr --weights /tmp/w13 --compile --progress json --overwrite --encoder-opt preset=veryfast"
for run in fa4a fa4b; do
  timeout 150 python3 -m streamvsr.cli.main upscale /tmp/in.mp4 -o /tmp/out.mp4 $A > /tmp/p_$run.jsonl 2> $OUT/e12_$run.txt
  python3 bench/cli_run.py rate /tmp/p_$run.jsonl $run | tee -a $OUT/cli12.txt
  grep -v '^{' $OUT/e12_$run.txt | tail -c 300
done
