#!/bin/bash
# fourteenth session, call 1 (one H100, FlexAttention): compiled graphs on disk (DiskCompiled). Does this PyTorch
# have aot_compile; what each compiled part did in a cold, a warm and a disk-cache-off process (probe_events.py);
# then a process's fixed cost in `streamvsr batch` (2 x 600 frames) with the disk cache off / on / on / off.
mkdir -p /tmp/avsite && tar -xJf .whl/avsite.tar.xz -C /tmp/avsite
export PYTHONPATH=$PWD/src:/tmp/avsite PYTHONUNBUFFERED=1
D=docs/runs/2026-11-27n
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu1.txt
python3 -c "import torch; f = torch.compile(lambda x: x + 1, fullgraph=True); print(torch.__version__, hasattr(f, 'aot_compile'), hasattr(torch.compiler, 'load_compiled_function'))" | tee -a $OUT/gpu1.txt
timeout 150 python3 bench/cli_run.py prepare --frames 600 2>&1 | tail -2
mkdir -p /tmp/bin /tmp/warmd && for v in a b; do cp /tmp/in.mp4 /tmp/bin/$v.mp4; done && cp /tmp/warm.mp4 /tmp/warmd/w.mp4
ms() { echo $(( ($(date +%s%N) - t0) / 1000000 )); }
probe() {  # label, timeout, env...
  local label=$1 to=$2; shift 2; t0=$(date +%s%N)
  env "$@" timeout $to python3 $D/probe_events.py /tmp/w13 > $OUT/probe_$label.txt 2>&1
  echo "probe $label: $(ms) ms; $(grep first $OUT/probe_$label.txt)" | tee -a $OUT/times1.txt
}
probe cold 200 X=1
cat $OUT/probe_cold.txt | tail -8
probe warm 60 X=1
probe off 150 STREAMVSR_COMPILE_CACHE=off
probe off2 60 STREAMVSR_COMPILE_CACHE=off
B="--model flashvsr --weights /tmp/w13 --compile --encoder-opt preset=veryfast"
run() {  # label, input folder, timeout, env...
  local label=$1 src=$2 to=$3; shift 3; rm -rf /tmp/bout; t0=$(date +%s%N)
  env "$@" timeout $to python3 -m streamvsr.cli.main batch $src /tmp/bout $B > $OUT/b1_$label.txt 2>&1
  echo "$label: wall $(ms) ms; $(grep 'frames in' $OUT/b1_$label.txt | sed 's/.*: //' | tr '\n' ' ')" | tee -a $OUT/times1.txt
}
run warm_on /tmp/warmd 90 X=1
run warm_off /tmp/warmd 90 STREAMVSR_COMPILE_CACHE=off
run off1 /tmp/bin 70 STREAMVSR_COMPILE_CACHE=off
run on1 /tmp/bin 70 X=1
run on2 /tmp/bin 70 X=1
run off2 /tmp/bin 70 STREAMVSR_COMPILE_CACHE=off
ls -la "$(python3 -c 'from torch._inductor.runtime.runtime_utils import cache_dir; print(cache_dir())')/streamvsr_precompiled" > $OUT/files1.txt 2>&1
