#!/bin/bash
# twelfth session, call 22 (one H200): `streamvsr batch` on 1 GPU (4 x 600 frames) without FA4, then with it
source docs/runs/2026-11-27l/fa4_site.sh
FA=$PYTHONPATH:/tmp/avsite
mkdir -p /tmp/avsite && tar -xJf .whl/avsite.tar.xz -C /tmp/avsite
PYTHONPATH=$PWD/src timeout 60 python3 scripts/make_random_model.py /tmp/w13 --size official-1.3b --device cuda | tail -1
for run in flex fa4; do
  if [ $run = fa4 ]; then export PYTHONPATH=$FA; else export PYTHONPATH=$PWD/src:/tmp/avsite; fi
  timeout 260 python3 bench/multigpu.py --weights /tmp/w13 --nproc 1 --frames 600 --modes batch \
    --cli-args "--compile --encoder-opt preset=veryfast" --json $OUT/mgpu22_$run.json 2>&1 | grep -v -i warn | tail -3 \
    | tee -a $OUT/mgpu22.txt
done
