#!/bin/bash
# eleventh session, call 9: the same hardware counters as call 5 for our attention kernel inside the model
# (S+tattnr, no second stream), the first 120 launches of the steady grid; 768x1408, 41 frames
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
S=epi+compile+dec+proj+fold+ring+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc+tpad+blists+ffin
M=gpu__time_duration.sum,launch__grid_size,launch__registers_per_thread,sm__throughput.avg.pct_of_peak_sustained_elapsed
M=$M,lts__t_sector_hit_rate.pct,dram__bytes_read.sum,sm__warps_active.avg.pct_of_peak_sustained_active
M=$M,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_elapsed,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active
M=$M,smsp__cycles_active.avg.pct_of_peak_sustained_elapsed,l1tex__t_bytes.sum
timeout 560 ncu --target-processes all --kernel-name regex:"_attend" --launch-skip 60 --launch-count 120 \
  --cache-control none --clock-control none --metrics $M --csv --log-file $OUT/ncu9.csv \
  python3 bench/flashvsr.py --sizes 768x1408 --frames 41 --backends flex --flex-variants pipeline \
  --levers $S+tattnr --psnr-frames 0 2>&1 | grep -v -i warn | grep -v "^\s*$" | tail -3 | tee $OUT/lev9.txt
wc -l $OUT/ncu9.csv
