#!/bin/bash
# fifteenth session, call 3 (one H100): the traceback of the CUDA test of DiskCompiled (calls 1 and 2: failed, its
# output hidden by captured logs), then the model's steady speed at 768x1408 along the pipeline's path (P, without
# FlashAttention 4: its wheels do not fit one call's carry) after the thirteenth session's decoder and LQ changes.
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader
ms() { echo $(( ($(date +%s%N) - t0) / 1000000 )); }
t0=$(date +%s%N); timeout 100 python3 -m pytest -q -x -p no:cacheprovider -p no:logging -m gpu tests/test_precompile.py \
  --tb=short --show-capture=no > $OUT/pytest3.txt 2>&1; echo "pytest: $(ms) ms"
grep -v -i "warn" $OUT/pytest3.txt | grep -E "^E |Error|assert|test_precompile.py:[0-9]+|passed|failed" | head -40
P=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc+tpad+blists+ffin
timeout 320 python3 bench/flashvsr.py --sizes 768x1408 --frames 161 --backends flex --flex-variants pipeline \
  --levers $P --psnr-frames 0 --json $OUT/lev3.json 2>&1 | grep -v -i warn | grep -v "^\s*$" | tail -8 | tee $OUT/lev3.txt
