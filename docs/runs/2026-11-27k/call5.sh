#!/bin/bash
# eleventh session, call 5: hardware counters of the attention kernels inside the model (Nsight Compute), without
# the second stream: FlexAttention's kernel (S) against ours (S+tattnr); 768x1408, 41 frames
. docs/runs/2026-11-27k/ncu_env.sh
which ncu || ls /opt/nvidia/nsight-compute/*/ncu
timeout 540 ncu --target-processes all --kernel-name regex:"flex_attention|_attend" --cache-control none \
  --clock-control none --metrics $M --csv --log-file $OUT/ncu5.csv \
  python3 bench/flashvsr.py --sizes 768x1408 --frames 41 --backends flex --flex-variants pipeline \
  --levers $S,$S+tattnr --psnr-frames 0 2>&1 | grep -v -i warn | grep -v "^\s*$" | tail -6 | tee $OUT/lev5.txt
ls -la $OUT; wc -l $OUT/ncu5.csv
