#!/bin/bash
# eleventh session, call 6: FlexAttention's tiles end to end in the model (its kernel ran at about 500 TFLOP/s in
# the model, call 5, against 376 to 404 in bench/attention_kernels.py): the pipeline's path P with each option set
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
P=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc+tpad+blists+ffin
V="pipeline;USE_TMA=true,BLOCK_M=64,BLOCK_N=64,num_warps=4,num_stages=3"
V="$V;USE_TMA=true,BLOCK_M=64,BLOCK_N=128,num_warps=4,num_stages=3;USE_TMA=true,BLOCK_M=128,BLOCK_N=64,num_warps=8,num_stages=4"
V="$V;pipeline"
timeout 560 python3 bench/flashvsr.py --sizes 768x1408 --frames 241 --backends flex --flex-variants "$V" \
  --levers $P --psnr-frames 0 --json $OUT/lev6.json 2>&1 \
  | grep -v -i warn | grep -v "^\s*$" | tail -12 | tee $OUT/lev6.txt
