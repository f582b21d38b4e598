#!/bin/bash
# fifteenth session, call 3b (the same warm H100 as call 3): the tiny upscaler on CUDA in bf16, eager against each
# single part compiled in memory (disk cache off), to tell a wrong graph from bf16 rounding. Output: call3b_times.txt.
export PYTHONPATH=$PWD/src; D=docs/runs/2026-11-28a
for p in dit dec lq; do STREAMVSR_COMPILE_CACHE=off timeout 70 python3 $D/cuda_compiled_diff.py $p 2>&1 | grep -v -i warn | tail -4; done
