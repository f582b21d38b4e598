#!/bin/bash
# eleventh session, call 8: the CUDA tests of the final code (the tenth session's review commit included); the
# pipeline's path P and the FP8 path at both sizes
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
timeout 150 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_flashvsr_attention.py tests/test_fused_conv.py \
  tests/test_flashvsr_dit.py tests/test_flashvsr_pipeline.py tests/test_fp8.py tests/test_fused_gelu.py \
  tests/test_frame_kernels.py tests/test_block_kernels.py 2>&1 | tail -2 | tee $OUT/tests8.txt
R=compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc+tpad+blists+ffin
P=epi+$R
timeout 420 python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 241 --backends flex --flex-variants pipeline \
  --levers $P,fp8+gelu+$R --json $OUT/lev8.json 2>&1 \
  | grep -v -i warn | grep -v "^\s*$" | tail -9 | tee $OUT/lev8.txt
