#!/bin/bash
# eleventh session, call 2: our attention kernel with Triton's warp specialization of its key loop, alone
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
python3 -c "import triton, inspect, triton.language as tl; print(triton.__version__, inspect.signature(tl.range.__init__))"
timeout 300 python3 bench/attention_kernels.py --sizes 768x1408,1080x1920 --layout model \
  --variants flex-one,tri,tri-ws,tri-ws:w4s3,tri-ws:w8s2,tri-ws:w8s4,flex-one,tri \
  --flex-variants pipeline --json $OUT/attn2.json 2>&1 | grep -v Warning | tail -24 | tee $OUT/attn2.txt
