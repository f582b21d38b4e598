#!/bin/bash
# twelfth session, call 8: 1080p, P against P+fa4 in one process; then the FP8 path with FA4 at 768x1408
source docs/runs/2026-11-27l/fa4_site.sh
R=compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc+tpad+blists+ffin
P=epi+$R
timeout 300 python3 bench/flashvsr.py --sizes 1080x1920 --frames 241 --backends flex --flex-variants pipeline \
  --levers $P,$P+fa4 --json $OUT/lev8a.json 2>&1 | grep -v -i warn | grep -v "^\s*$" | tail -4 | tee $OUT/lev8a.txt
timeout 270 python3 bench/flashvsr.py --sizes 768x1408 --frames 241 --backends flex --flex-variants pipeline \
  --levers fp8+gelu+$R+fa4 --json $OUT/lev8b.json 2>&1 | grep -v -i warn | grep -v "^\s*$" | tail -4 | tee $OUT/lev8b.txt
