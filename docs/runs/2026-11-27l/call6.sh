#!/bin/bash
# twelfth session, call 6: part 3 and the install (fa4_site.sh); the CUDA tests of the FA4 adapter and our block
# kernels; end to end at 768x1408: the pipeline's path P with FlexAttention against P with FlashAttention 4 (fa4),
# alternating, in one process
source docs/runs/2026-11-27l/fa4_site.sh
timeout 150 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_fa4.py tests/test_block_kernels.py 2>&1 \
  | tail -3 | tee $OUT/tests6.txt
P=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc+tpad+blists+ffin
timeout 400 python3 bench/flashvsr.py --sizes 768x1408 --frames 241 --backends flex --flex-variants pipeline \
  --levers $P,$P+fa4,$P,$P+fa4 --json $OUT/lev6.json 2>&1 | grep -v -i warn | grep -v "^\s*$" | tail -10 | tee $OUT/lev6.txt
