#!/bin/bash
# eleventh session, call 4: Inductor's coordinate-descent tuning of its own Triton kernels (norms, modulation,
# RoPE, block means, the decoder's glue), the pipeline's path P in two fresh processes: default, then tuned
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
P=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc+tpad+blists+ffin
run() {
  timeout $1 python3 bench/flashvsr.py --sizes 768x1408 --frames 241 --backends flex --flex-variants pipeline \
    --levers $P --json $OUT/$2.json 2>&1 | grep -v -i warn | grep -v "^\s*$" | tail -4 | tee $OUT/$2.txt
}
run 170 lev4a
date
TORCHINDUCTOR_COORDINATE_DESCENT_TUNING=1 run 420 lev4b
date
