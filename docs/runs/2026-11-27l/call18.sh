#!/bin/bash
# twelfth session, call 18: `streamvsr upscale` on 1 GPU against `upscale --segments auto` on 2 GPUs, one video of
# 6400 frames (as the afternoon session of 2026-11-26, call 7), flash-attn-4 on the path
source docs/runs/2026-11-27l/fa4_site.sh
export PYTHONPATH=$PYTHONPATH:/tmp/avsite
timeout 570 python3 bench/multigpu.py --weights /tmp/w13 --nproc 2 --long-frames 6400 --frames 600 --modes segments \
  --cli-args "--compile --encoder-opt preset=veryfast" --json $OUT/mgpu18.json 2>&1 | grep -v -i warn | tail -12 \
  | tee $OUT/mgpu18.txt
