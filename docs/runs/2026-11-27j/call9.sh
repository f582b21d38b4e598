#!/bin/bash
# tenth session, call 9: on call 8's machine, the pipeline's path P alone, two processes, 768x1408
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
N=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc
P=$N+tpad+blists+ffin
for i in 1 2; do
timeout 200 python3 bench/flashvsr.py --sizes 768x1408 --frames 241 --backends flex \
  --flex-variants pipeline --levers $P --json $OUT/lev9_$i.json 2>&1 \
  | grep -v -i warn | tail -3 | tee $OUT/lev9_$i.txt
done
