#!/bin/bash
# fifteenth session, call 2 (nvidia-h200-x2; came as two H100s): the device's Python has no bytecode for torch
# (no __pycache__, PYTHONDONTWRITEBYTECODE=1), so every process compiles torch's sources, and with the graphs loaded
# from disk Inductor's imports fall inside the first video (py-spy of call 1). A pip install writes the bytecode;
# compileall does the same here. Then `streamvsr batch` 4 x 600 frames on 1 and 2 GPUs with the bytecode, and
# again (--reuse) with the timed runs pointed at an empty bytecode folder (the device as it was). Before that, the
# CUDA test of DiskCompiled that failed in call 1, with its traceback.
mkdir -p /tmp/avsite && tar -xJf .whl/avsite.tar.xz -C /tmp/avsite
export PYTHONPATH=$PWD/src:/tmp/avsite PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader; nproc; env | grep -i PYTHON
ms() { echo $(( ($(date +%s%N) - t0) / 1000000 )); }
t0=$(date +%s%N); timeout 90 python3 -m pytest -q -x -p no:cacheprovider -m gpu tests/test_precompile.py --tb=short 2>&1 \
  | grep -v -i "warn" | tail -30; echo "pytest: $(ms) ms"
t0=$(date +%s%N); timeout 120 python3 scripts/make_random_model.py /tmp/w13 --size official-1.3b --device cuda 2>&1 | tail -1; echo "model: $(ms) ms"
SP=$(python3 -c 'import torch, os; print(os.path.dirname(os.path.dirname(torch.__file__)))'); echo $SP
ls -d $SP/torch/__pycache__ 2>&1 | head -1
t0=$(date +%s%N); timeout 90 python3 -m compileall -q -j 0 $SP src /tmp/avsite > /tmp/compileall.log 2>&1; echo "compileall rc $?: $(ms) ms"
C="--compile --encoder-opt preset=veryfast"
M="--weights /tmp/w13 --nproc 2 --frames 600 --modes batch"
timeout 280 python3 bench/multigpu.py $M --cli-args "$C" --json $OUT/mgpu2_pyc.json 2>&1 | grep -v -i warn | tee $OUT/mgpu2_pyc.txt
grep -h "frames in" /tmp/multigpu/batch1.log /tmp/multigpu/batch2.log
timeout 150 python3 bench/multigpu.py $M --cli-args "$C" --reuse --timed-env PYTHONPYCACHEPREFIX=/tmp/nopyc \
  --json $OUT/mgpu2_nopyc.json 2>&1 | grep -v -i warn | tee $OUT/mgpu2_nopyc.txt
grep -h "frames in" /tmp/multigpu/batch1.log /tmp/multigpu/batch2.log
