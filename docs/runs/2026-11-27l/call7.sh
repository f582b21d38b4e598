#!/bin/bash
# twelfth session, call 7: call 6's bench (its lever part fa4 was not registered there): end to end at 768x1408,
# the pipeline's path P with FlexAttention against P with FlashAttention 4 (fa4), alternating, in one process
source docs/runs/2026-11-27l/fa4_site.sh
P=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc+tpad+blists+ffin
timeout 560 python3 bench/flashvsr.py --sizes 768x1408 --frames 241 --backends flex --flex-variants pipeline \
  --levers $P,$P+fa4,$P,$P+fa4 --json $OUT/lev7.json 2>&1 | grep -v -i warn | grep -v "^\s*$" | tail -10 | tee $OUT/lev7.txt
