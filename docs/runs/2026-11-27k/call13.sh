#!/bin/bash
# eleventh session, call 13: coordinate-descent tuning again, in the other order (tuned process first, then the
# default), the pipeline's path P at 768x1408
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
P=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc+tpad+blists+ffin
run() {
  timeout $1 python3 bench/flashvsr.py --sizes 768x1408 --frames 241 --backends flex --flex-variants pipeline \
    --levers $P --psnr-frames 0 --json $OUT/$2.json 2>&1 | grep -v -i warn | grep -v "^\s*$" | tail -2 | tee $OUT/$2.txt
}
date
TORCHINDUCTOR_COORDINATE_DESCENT_TUNING=1 run 370 lev13a
date
run 200 lev13b
date
