#!/bin/bash
# twelfth session, call 9: the CUDA tests with flash-attn-4 installed (the library's default "auto" takes it on Hopper)
source docs/runs/2026-11-27l/fa4_site.sh
timeout 400 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_fa4.py tests/test_flashvsr_attention.py \
  tests/test_fused_conv.py tests/test_flashvsr_dit.py tests/test_flashvsr_pipeline.py tests/test_fp8.py \
  tests/test_fused_gelu.py tests/test_frame_kernels.py tests/test_block_kernels.py 2>&1 | tail -4 | tee $OUT/tests9.txt
