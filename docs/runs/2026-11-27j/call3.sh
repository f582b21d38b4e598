#!/bin/bash
# tenth session, call 3: the kernels alone in the model's layouts; a profile of the steady chunk with and without ours
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
N=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc
T=$N+tpad
timeout 150 python3 bench/attention_kernels.py --sizes 768x1408,1080x1920 --layout model \
  --variants flex-one,tri,tri-lpt,tri:w8s4,flex-one,tri \
  --flex-variants pipeline --json $OUT/attn3.json 2>&1 | grep -v Warning | tail -14 | tee $OUT/attn3.txt
timeout 400 python3 bench/flashvsr.py --sizes 768x1408 --frames 41 --backends flex \
  --flex-variants pipeline --levers $T+tattnr,$T --profile 3 --json $OUT/prof3.json 2>&1 \
  | grep -v -i warn | tail -150 > $OUT/prof3.txt
tail -5 $OUT/prof3.txt
