#!/bin/bash
# eleventh session, call 12: the q/k kernel: CUDA test, alone against Inductor's (more repetitions), end to end
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
timeout 90 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_qk_kernel.py 2>&1 | tail -2 | tee $OUT/tests12.txt
timeout 120 python3 bench/qk_kernel_gpu.py --json $OUT/qk12.json 2>&1 | grep -v -i warn | tee $OUT/qk12.txt
P=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc+tpad+blists+ffin
timeout 330 python3 bench/flashvsr.py --sizes 768x1408 --frames 241 --backends flex --flex-variants pipeline \
  --levers $P+qkf,$P --json $OUT/lev12.json 2>&1 | grep -v -i warn | grep -v "^\s*$" | tail -4 | tee $OUT/lev12.txt
