#!/bin/bash
# twelfth session, call 17: `streamvsr batch` on 1 and 2 GPUs (4 videos x 600 frames, 352x192 -> 1408x768, bf16,
# --compile) with flash-attn-4 on the path (the library's "auto" takes it); PyAV from the carried .whl/avsite.tar.xz
source docs/runs/2026-11-27l/fa4_site.sh
mkdir -p /tmp/avsite && tar -xJf .whl/avsite.tar.xz -C /tmp/avsite
export PYTHONPATH=$PYTHONPATH:/tmp/avsite
timeout 560 python3 bench/multigpu.py --weights /tmp/w13 --nproc 2 --frames 600 --modes batch \
  --cli-args "--compile --encoder-opt preset=veryfast" --json $OUT/mgpu17.json 2>&1 | grep -v -i warn | tail -12 \
  | tee $OUT/mgpu17.txt
