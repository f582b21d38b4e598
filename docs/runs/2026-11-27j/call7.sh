#!/bin/bash
# tenth session, call 7: on call 6's machine, the pipeline's path again and with FP8 linears, 768x1408
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
R=compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc+tpad+blists+ffin
P=epi+$R
timeout 400 python3 bench/flashvsr.py --sizes 768x1408 --frames 241 --backends flex \
  --flex-variants pipeline --levers $P,fp8+gelu+$R --json $OUT/lev7.json 2>&1 \
  | grep -v -i warn | tail -20 | tee $OUT/lev7.txt
