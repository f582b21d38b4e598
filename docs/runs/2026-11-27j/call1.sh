#!/bin/bash
# tenth session, call 1: our Triton block kernels on the H100 (CUDA tests, then the kernels alone against FlexAttention)
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/gpu1.txt
python3 -c "import triton, torch; print(torch.__version__, triton.__version__)" | tee -a $OUT/gpu1.txt
timeout 120 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_block_kernels.py 2>&1 | tail -15 | tee $OUT/tests1.txt
timeout 420 python3 bench/attention_kernels.py --sizes 768x1408,1080x1920 \
  --variants flex-one,tri,tri-lpt,tri-lpt-ptr,tri-lpt:w8s2,tri-lpt:w8s4,tri-lpt:w4s3,flex-one,lists-torch,lists-tri \
  --flex-variants pipeline --json $OUT/attn1.json 2>&1 | grep -v Warning | tail -40 | tee $OUT/attn1.txt
