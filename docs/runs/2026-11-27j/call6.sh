#!/bin/bash
# tenth session, call 6: the final code on a fresh machine, both sizes: the pipeline's path (P) and the ninth session's (T)
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
N=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc
T=$N+tpad
P=$T+blists+ffin
timeout 560 python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 241 --backends flex \
  --flex-variants pipeline --levers $P,$T --json $OUT/lev6.json 2>&1 \
  | grep -v -i warn | tail -20 | tee $OUT/lev6.txt
