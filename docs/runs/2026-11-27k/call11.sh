#!/bin/bash
# eleventh session, call 11: the q/k kernel with each channel's pair partner loaded instead of a split and join:
# CUDA test, alone against Inductor's
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
timeout 90 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_qk_kernel.py 2>&1 | tail -4 | tee $OUT/tests11.txt
timeout 120 python3 bench/qk_kernel_gpu.py --json $OUT/qk11.json 2>&1 | grep -v -i warn | tee $OUT/qk11.txt
