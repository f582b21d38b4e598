#!/bin/bash
# fifteenth session, call 1 (nvidia-h200-x2): `streamvsr batch` 4 x 600 frames on 1 and 2 GPUs with Inductor's
# compile worker pool off in the timed runs (TORCHINDUCTOR_COMPILE_THREADS=1; the warm-up keeps it), then py-spy
# (speedscope, idle included) of one warm process's 600-frame video, pool on / off alternately, then the CUDA test
# of DiskCompiled. PyAV and py-spy from .whl.
mkdir -p /tmp/avsite && tar -xJf .whl/avsite.tar.xz -C /tmp/avsite
python3 -m pip install -q --no-index --no-deps --target /tmp/spy .whl/py_spy-*.whl 2>&1 | grep -v -i warn | tail -1
export PYTHONPATH=$PWD/src:/tmp/avsite PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader; nproc
ms() { echo $(( ($(date +%s%N) - t0) / 1000000 )); }
t0=$(date +%s%N); timeout 120 python3 scripts/make_random_model.py /tmp/w13 --size official-1.3b --device cuda 2>&1 | tail -1; echo "model: $(ms) ms"
C="--compile --encoder-opt preset=veryfast"
timeout 290 python3 bench/multigpu.py --weights /tmp/w13 --nproc 2 --frames 600 --modes batch --cli-args "$C" \
  --timed-env TORCHINDUCTOR_COMPILE_THREADS=1 --json $OUT/mgpu1.json 2>&1 | grep -v -i warn | tee $OUT/mgpu1.txt
grep -h "frames in" /tmp/multigpu/batch1.log /tmp/multigpu/batch2.log
mkdir -p /tmp/one && cp /tmp/multigpu/in/v0.mp4 /tmp/one/
spy() {  # label, env...
  local label=$1; shift; rm -rf /tmp/oo; t0=$(date +%s%N)
  env "$@" timeout 60 /tmp/spy/bin/py-spy record --idle -r 100 -f speedscope -o $OUT/spy_$label.json -- \
    python3 -m streamvsr.cli.main batch /tmp/one /tmp/oo --model flashvsr --weights /tmp/w13 $C > /tmp/log_$label 2>&1
  echo "spy $label: wall $(ms) ms; $(grep 'frames in' /tmp/log_$label | sed 's/.*: //')"
}
spy def X=1
spy t1 TORCHINDUCTOR_COMPILE_THREADS=1
spy def2 X=1
spy t1b TORCHINDUCTOR_COMPILE_THREADS=1
t0=$(date +%s%N); timeout 100 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_precompile.py 2>&1 | tail -3; echo "pytest: $(ms) ms"
