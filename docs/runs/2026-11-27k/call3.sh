#!/bin/bash
# eleventh session, call 3: does our attention kernel win without the decoder's stream beside it? The pipeline's path
# P, the same without the second stream (S), each with our kernel (tattnr), and P+tattnr with the decoder's stream
# first (pdec) instead of the DiT's (pwork); 768x1408
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
B=epi+compile+dec+proj+fold+ring+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc+tpad+blists+ffin
P=$B+streams+pwork
S=$B
timeout 560 python3 bench/flashvsr.py --sizes 768x1408 --frames 241 --backends flex --flex-variants pipeline \
  --levers $S,$S+tattnr,$P,$P+tattnr,$B+streams+pdec+tattnr --json $OUT/lev3.json 2>&1 \
  | grep -v -i warn | grep -v "^\s*$" | tail -12 | tee $OUT/lev3.txt
