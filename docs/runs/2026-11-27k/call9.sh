#!/bin/bash
# eleventh session, call 9: the same hardware counters as call 5 for our attention kernel inside the model
# (S+tattnr, no second stream), the first 120 launches of the steady grid; 768x1408, 41 frames
. docs/runs/2026-11-27k/ncu_env.sh
timeout 560 ncu --target-processes all --kernel-name regex:"_attend" --launch-skip 60 --launch-count 120 \
  --cache-control none --clock-control none --metrics $M --csv --log-file $OUT/ncu9.csv \
  python3 bench/flashvsr.py --sizes 768x1408 --frames 41 --backends flex --flex-variants pipeline \
  --levers $S+tattnr --psnr-frames 0 2>&1 | grep -v -i warn | grep -v "^\s*$" | tail -3 | tee $OUT/lev9.txt
wc -l $OUT/ncu9.csv
