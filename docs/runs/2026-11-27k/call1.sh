#!/bin/bash
# eleventh session, call 1: the sub-pixel convolutions' summed weights made once (upcw) and as one strided
# transposed convolution (upct): CUDA tests, the three upsampling stages alone, end to end at 768x1408
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
timeout 90 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_fused_conv.py 2>&1 | tail -2 | tee $OUT/tests1.txt
timeout 150 python3 bench/tail_ops_gpu.py --only-upsample --json $OUT/ups1.json 2>&1 | grep -v -i warn | tee $OUT/ups1.txt
N=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc
P=$N+tpad+blists+ffin
timeout 360 python3 bench/flashvsr.py --sizes 768x1408 --frames 241 --backends flex --flex-variants pipeline \
  --levers $P,$P+upcw,$P+upcw+upct --json $OUT/lev1.json 2>&1 \
  | grep -v -i warn | grep -v "^\s*$" | tail -20 | tee $OUT/lev1.txt
