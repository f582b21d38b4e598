#!/bin/bash
# eleventh session, call 5: hardware counters of the attention kernels inside the model (Nsight Compute), without
# the second stream: FlexAttention's kernel (S) against ours (S+tattnr); 768x1408, 41 frames
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
S=epi+compile+dec+proj+fold+ring+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc+tpad+blists+ffin
M=gpu__time_duration.sum,launch__grid_size,launch__registers_per_thread,sm__throughput.avg.pct_of_peak_sustained_elapsed
M=$M,lts__t_sector_hit_rate.pct,dram__bytes_read.sum,sm__warps_active.avg.pct_of_peak_sustained_active
M=$M,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_elapsed,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active
M=$M,smsp__cycles_active.avg.pct_of_peak_sustained_elapsed,l1tex__t_bytes.sum
which ncu || ls /opt/nvidia/nsight-compute/*/ncu
timeout 540 ncu --target-processes all --kernel-name regex:"flex_attention|_attend" --cache-control none \
  --clock-control none --metrics $M --csv --log-file $OUT/ncu5.csv \
  python3 bench/flashvsr.py --sizes 768x1408 --frames 41 --backends flex --flex-variants pipeline \
  --levers $S,$S+tattnr --psnr-frames 0 2>&1 | grep -v -i warn | grep -v "^\s*$" | tail -6 | tee $OUT/lev5.txt
ls -la $OUT; wc -l $OUT/ncu5.csv
