#!/bin/bash
# thirteenth session, call 2 (one H100, FlexAttention): a process's fixed cost in `streamvsr batch`, new code (one
# decoder graph, one LQ graph, settled size-1 strides) against the last commit's (.oldsrc), and with and without
# Python bytecode caching (this machine's Python writes no .pyc: every process compiled torch's sources).
mkdir -p /tmp/avsite && tar -xJf .whl/avsite.tar.xz -C /tmp/avsite
D=docs/runs/2026-11-27m
python3 -c "import sys, os; print('dont_write_bytecode', sys.flags.dont_write_bytecode, os.environ.get('PYTHONDONTWRITEBYTECODE'))" | tee $OUT/env2.txt
ls /opt/torch/.venv/lib/python3.12/site-packages/torch/_dynamo/__pycache__ 2>&1 | head -2 | tee -a $OUT/env2.txt
NEW=$PWD/src:/tmp/avsite OLD=$PWD/.oldsrc/src:/tmp/avsite
export PYTHONUNBUFFERED=1 PYTHONPYCACHEPREFIX=/tmp/pyc
unset PYTHONDONTWRITEBYTECODE
PYTHONPATH=$NEW timeout 150 python3 bench/cli_run.py prepare --frames 600 2>&1 | tail -2
mkdir -p /tmp/warmd /tmp/bin && for v in a b c; do cp /tmp/in.mp4 /tmp/bin/$v.mp4; done
PYTHONPATH=$NEW python3 -c "
import sys; sys.path.insert(0, 'bench')
from multigpu import write_video; from pathlib import Path
write_video(Path('/tmp/warmd/w.mp4'), 64, 192, 352, 7)"
B="--model flashvsr --weights /tmp/w13 --compile --encoder-opt preset=veryfast"
ms() { echo $(( ($(date +%s%N) - t0) / 1000000 )); }
run() {  # label, pythonpath, extra env...
  local label=$1 pp=$2; shift 2
  rm -rf /tmp/bout; t0=$(date +%s%N)
  env PYTHONPATH=$pp "$@" TORCH_LOGS=recompiles timeout 200 python3 -m streamvsr.cli.main batch /tmp/bin /tmp/bout $B \
    > $OUT/b2_$label.txt 2>&1
  echo "$label: wall $(ms) ms; $(grep 'frames in' $OUT/b2_$label.txt | sed 's/.*: //' | tr '\n' ' ')" | tee -a $OUT/times2.txt
}
t0=$(date +%s%N); PYTHONPATH=$NEW timeout 300 python3 -m streamvsr.cli.main batch /tmp/warmd /tmp/wo $B > $OUT/w2_new.txt 2>&1
echo "warm-up new: $(ms) ms" | tee -a $OUT/times2.txt
run new_pyc $NEW
run new_nopyc $NEW PYTHONDONTWRITEBYTECODE=1 PYTHONPYCACHEPREFIX=/tmp/none
rm -rf /tmp/wo; t0=$(date +%s%N); PYTHONPATH=$OLD timeout 200 python3 -m streamvsr.cli.main batch /tmp/warmd /tmp/wo $B > $OUT/w2_old.txt 2>&1
echo "warm-up old: $(ms) ms" | tee -a $OUT/times2.txt
run old_pyc $OLD
grep -c "Recompiling" $OUT/b2_*.txt | tee -a $OUT/times2.txt
