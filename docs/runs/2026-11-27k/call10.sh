#!/bin/bash
# eleventh session, call 10: the q/k tail of the projection step as one Triton kernel (qkf): CUDA test, the kernel
# alone against Inductor's, and end to end at 768x1408 against the pipeline's path P
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
timeout 90 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_qk_kernel.py 2>&1 | tail -2 | tee $OUT/tests10.txt
timeout 120 python3 bench/qk_kernel_gpu.py --json $OUT/qk10.json 2>&1 | grep -v -i warn | tee $OUT/qk10.txt
P=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc+tpad+blists+ffin
timeout 360 python3 bench/flashvsr.py --sizes 768x1408 --frames 241 --backends flex --flex-variants pipeline \
  --levers $P+qkf,$P,$P+qkf --json $OUT/lev10.json 2>&1 \
  | grep -v -i warn | grep -v "^\s*$" | tail -8 | tee $OUT/lev10.txt
