#!/bin/bash
# tenth session, call 10: our attention kernel beside the decoder's stream with less shared memory (two stages,
# key tiles of 64 rows), its registers and shared memory; 768x1408
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
timeout 60 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_block_kernels.py 2>&1 | tail -2 | tee $OUT/tests10.txt
N=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc
P=$N+tpad+blists+ffin
timeout 480 python3 bench/flashvsr.py --sizes 768x1408 --frames 241 --backends flex --flex-variants pipeline \
  --levers $P+tattnr+tn64,$P,$P+tattnr,$P+tattnr+ts2,$P+tattnr+tn64+ts2 --json $OUT/lev10.json 2>&1 \
  | grep -v -i warn | grep -v "^\s*$" | tail -24 | tee $OUT/lev10.txt
