#!/bin/bash
# twelfth session, call 18: call 17 again without flash-attn-4 on the path (FlexAttention), the same machine
export PYTHONPATH=$PWD/src:/tmp/avsite PYTHONUNBUFFERED=1
timeout 420 python3 bench/multigpu.py --weights /tmp/w13 --nproc 2 --frames 600 --modes batch \
  --cli-args "--compile --encoder-opt preset=veryfast" --json $OUT/mgpu18.json 2>&1 | grep -v -i warn | tail -12 \
  | tee $OUT/mgpu18.txt
