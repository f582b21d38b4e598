#!/bin/bash
# twelfth session, call 1 (H100): part 1 of 3 of the CuTe DSL compiler library travels (.fa4a, kept in /tmp/fa4);
# the first GPU run of bench/attention_kernels.py --layout captured (FlexAttention and our kernel on one steady
# self-attention call of the model itself, 768x1408)
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
mkdir -p /tmp/fa4 && cp .fa4a/* /tmp/fa4/
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit,driver_version --format=csv,noheader
timeout 480 python3 bench/attention_kernels.py --layout captured --sizes 768x1408 --variants flex-lists,tri,tri-lpt \
  --flex-variants pipeline --json $OUT/attn1.json 2>&1 | grep -v -i warn | tail -20 | tee $OUT/attn1.txt
