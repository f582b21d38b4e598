#!/bin/bash
# twelfth session, call 2 (H100): part 2 of 3 of the CuTe DSL compiler library travels (.fa4b, kept in /tmp/fa4);
# the CUDA tests of main (the eleventh session's last review commit had not run on a GPU)
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
mkdir -p /tmp/fa4 && cp .fa4b/* /tmp/fa4/
timeout 540 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_flashvsr_attention.py tests/test_fused_conv.py \
  tests/test_flashvsr_dit.py tests/test_flashvsr_pipeline.py tests/test_fp8.py tests/test_fused_gelu.py \
  tests/test_frame_kernels.py tests/test_block_kernels.py 2>&1 | tail -15 | tee $OUT/tests2.txt
