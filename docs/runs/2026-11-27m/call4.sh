#!/bin/bash
# thirteenth session, call 4 (nvidia-h200-x2, FlexAttention): `streamvsr batch` (4 x 600 frames) on 1 and 2 GPUs with
# this session's code (one decoder graph, one LQ graph, warm-up videos as long as the timed ones, steady rates and
# each process's fixed cost in the table), then `upscale --segments auto` on 3200 frames. PyAV from .whl.
mkdir -p /tmp/avsite && tar -xJf .whl/avsite.tar.xz -C /tmp/avsite
export PYTHONPATH=$PWD/src:/tmp/avsite PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpus4.txt
timeout 120 python3 scripts/make_random_model.py /tmp/w13 --size official-1.3b --device cuda 2>&1 | tail -1
C="--compile --encoder-opt preset=veryfast"
timeout 330 python3 bench/multigpu.py --weights /tmp/w13 --nproc 2 --frames 600 --modes batch --cli-args "$C" \
  --json $OUT/mgpu4_batch.json 2>&1 | grep -v -i warn | tee $OUT/mgpu4_batch.txt
grep -h "frames in" /tmp/multigpu/batch1.log /tmp/multigpu/batch2.log > $OUT/mgpu4_batch_videos.txt
timeout 200 python3 bench/multigpu.py --weights /tmp/w13 --nproc 2 --frames 600 --videos 0 --long-frames 3200 \
  --modes segments --cli-args "$C" --json $OUT/mgpu4_seg.json 2>&1 | grep -v -i warn | tee $OUT/mgpu4_seg.txt
grep -h "start .*plan" /tmp/multigpu/seg2.log > $OUT/mgpu4_seg_phases.txt 2>/dev/null
