#!/bin/bash
# tenth session, call 5: CUDA tests of the final code; the pipeline's path (P, with blists and ffin now defaults)
# against the ninth session's (T), alternating, 768x1408
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
timeout 200 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_flashvsr_attention.py tests/test_fused_conv.py \
  tests/test_flashvsr_dit.py tests/test_flashvsr_pipeline.py tests/test_fp8.py tests/test_fused_gelu.py \
  tests/test_color_kernel.py tests/test_block_kernels.py 2>&1 | tail -4 | tee $OUT/tests5.txt
N=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc
T=$N+tpad
P=$T+blists+ffin
timeout 330 python3 bench/flashvsr.py --sizes 768x1408 --frames 241 --backends flex \
  --flex-variants pipeline --levers $P,$T --json $OUT/lev5.json 2>&1 \
  | grep -v -i warn | tail -20 | tee $OUT/lev5.txt
