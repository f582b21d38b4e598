#!/bin/bash
# tenth session, call 2: end to end with our block kernels (lists only; lists + attention, longest first or in order)
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
N=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc
T=$N+tpad
timeout 570 python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 241 --backends flex \
  --flex-variants pipeline --levers $T+tattn,$T,$T+tattnr,$T+blists --json $OUT/lev2.json 2>&1 \
  | grep -v -i warn | tail -40 | tee $OUT/lev2.txt
