#!/bin/bash
# tenth session, call 8: the input step fused too (ffin now covers both); CUDA tests of the frame kernels;
# P (= T+blists+ffin) against T+blists and T, both sizes
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
timeout 100 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_frame_kernels.py tests/test_flashvsr_pipeline.py 2>&1 | tail -3 | tee $OUT/tests8.txt
N=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc
T=$N+tpad
P=$T+blists+ffin
timeout 450 python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 241 --backends flex \
  --flex-variants pipeline --levers $P,$T+blists,$T --json $OUT/lev8.json 2>&1 \
  | grep -v -i warn | tail -24 | tee $OUT/lev8.txt
