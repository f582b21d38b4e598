#!/bin/bash
# twelfth session, call 21 (one H200; calls 19 and 20 carried parts 1 and 2 as calls 4 and 5 did): P against P+fa4
# at 768x1408 on an H200 (the batch runs of calls 17 and 18 on H200s were slower with FA4)
source docs/runs/2026-11-27l/fa4_site.sh
P=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc+tpad+blists+ffin
timeout 400 python3 bench/flashvsr.py --sizes 768x1408 --frames 161 --backends flex --flex-variants pipeline \
  --levers $P+fa4,$P --psnr-frames 0 --json $OUT/lev21.json 2>&1 | grep -v -i warn | grep -v "^\s*$" | tail -4 | tee $OUT/lev21.txt
