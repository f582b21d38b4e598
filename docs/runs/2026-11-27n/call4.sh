#!/bin/bash
# fourteenth session, call 4 (nvidia-h200-x2 or two H100s, FlexAttention): `streamvsr batch` (4 x 600 frames) on 1 and
# 2 GPUs with the compiled graphs on disk (DiskCompiled: the warm-up saves them, every later process loads them),
# then `upscale --segments auto` on 3200 frames. PyAV from .whl.
mkdir -p /tmp/avsite && tar -xJf .whl/avsite.tar.xz -C /tmp/avsite
export PYTHONPATH=$PWD/src:/tmp/avsite PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpus4.txt
timeout 120 python3 scripts/make_random_model.py /tmp/w13 --size official-1.3b --device cuda 2>&1 | tail -1
C="--compile --encoder-opt preset=veryfast"
timeout 290 python3 bench/multigpu.py --weights /tmp/w13 --nproc 2 --frames 600 --modes batch --cli-args "$C" \
  --json $OUT/mgpu4_batch.json 2>&1 | grep -v -i warn | tee $OUT/mgpu4_batch.txt
grep -h "frames in" /tmp/multigpu/batch1.log /tmp/multigpu/batch2.log > $OUT/mgpu4_batch_videos.txt
ls "$(python3 -c 'from torch._inductor.runtime.runtime_utils import cache_dir; print(cache_dir())')/streamvsr_precompiled" > $OUT/files4.txt 2>&1
timeout 150 python3 bench/multigpu.py --weights /tmp/w13 --nproc 2 --frames 600 --videos 0 --long-frames 3200 \
  --modes segments --cli-args "$C" --json $OUT/mgpu4_seg.json 2>&1 | grep -v -i warn | tee $OUT/mgpu4_seg.txt
