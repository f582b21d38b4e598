#!/bin/bash
# twelfth session, call 10: call 7 in the other order (P+fa4 first), with a sequential profile of 2 steady chunks
source docs/runs/2026-11-27l/fa4_site.sh
P=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc+tpad+blists+ffin
timeout 560 python3 bench/flashvsr.py --sizes 768x1408 --frames 241 --backends flex --flex-variants pipeline \
  --levers $P+fa4,$P --profile 2 --json $OUT/lev10.json 2>&1 | grep -v -i warn | grep -v "^\s*$" | tee $OUT/lev10.txt | tail -60
