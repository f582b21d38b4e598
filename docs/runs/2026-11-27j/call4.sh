#!/bin/bash
# tenth session, call 4: CUDA tests of the new kernels; end to end with the fused output step (ffin) and the
# block lists kernel (blists), float32 frames, then uint8 frames as the CLI pushes them
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
timeout 100 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_color_kernel.py tests/test_block_kernels.py 2>&1 | tail -4 | tee $OUT/tests4.txt
N=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc
T=$N+tpad
timeout 340 python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 241 --backends flex \
  --flex-variants pipeline --levers $T+ffin+blists,$T,$T+ffin,$T+blists --json $OUT/lev4a.json 2>&1 \
  | grep -v -i warn | tail -40 | tee $OUT/lev4a.txt
timeout 140 python3 bench/flashvsr.py --sizes 768x1408 --frames 241 --backends flex --uint8 \
  --flex-variants pipeline --levers $T,$T+ffin+blists --json $OUT/lev4b.json 2>&1 \
  | grep -v -i warn | tail -20 | tee $OUT/lev4b.txt
