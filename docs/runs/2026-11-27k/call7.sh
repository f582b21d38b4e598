#!/bin/bash
# eleventh session, call 7: where the steady chunk goes without the second stream (kernel times not stretched by
# the other stream): the pipeline's path without streams (S), torch.profiler over 3 steady chunks; 768x1408
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
S=epi+compile+dec+proj+fold+ring+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc+tpad+blists+ffin
timeout 400 python3 bench/flashvsr.py --sizes 768x1408 --frames 41 --backends flex --flex-variants pipeline \
  --levers $S --psnr-frames 0 --profile 3 --json $OUT/prof7.json 2>&1 | grep -v -i warn | tail -170 > $OUT/prof7.txt
tail -3 $OUT/prof7.txt
