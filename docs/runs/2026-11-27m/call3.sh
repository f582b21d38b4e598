#!/bin/bash
# thirteenth session, call 3 (one H100, FlexAttention): the new code's fixed cost per process in `streamvsr batch`
# (3 x 600 frames; each video's time to its first frame now printed), with and without Python bytecode caching
# (this machine's Python writes none), and where a process's first video goes (py-spy, all threads, idle included).
mkdir -p /tmp/avsite && tar -xJf .whl/avsite.tar.xz -C /tmp/avsite
python3 -m pip install -q --no-index --no-deps --target /tmp/spy .whl/py_spy-*.whl 2>&1 | grep -v -i warn | tail -1
export PYTHONPATH=$PWD/src:/tmp/avsite PYTHONUNBUFFERED=1 PYTHONPYCACHEPREFIX=/tmp/pyc
unset PYTHONDONTWRITEBYTECODE
timeout 150 python3 bench/cli_run.py prepare --frames 600 2>&1 | tail -2
mkdir -p /tmp/warmd /tmp/bin /tmp/bin1 && for v in a b c; do cp /tmp/in.mp4 /tmp/bin/$v.mp4; done && cp /tmp/in.mp4 /tmp/bin1/a.mp4
python3 -c "
import sys; sys.path.insert(0, 'bench')
from multigpu import write_video; from pathlib import Path
write_video(Path('/tmp/warmd/w.mp4'), 64, 192, 352, 7)"
B="--model flashvsr --weights /tmp/w13 --compile --encoder-opt preset=veryfast"
ms() { echo $(( ($(date +%s%N) - t0) / 1000000 )); }
run() {  # label, extra env...
  local label=$1; shift
  rm -rf /tmp/bout; t0=$(date +%s%N)
  env "$@" TORCH_LOGS=recompiles timeout 200 python3 -m streamvsr.cli.main batch /tmp/bin /tmp/bout $B > $OUT/b3_$label.txt 2>&1
  echo "$label: wall $(ms) ms; $(grep 'frames in' $OUT/b3_$label.txt | sed 's/.*: //' | tr '\n' ' ')" | tee -a $OUT/times3.txt
}
t0=$(date +%s%N); timeout 300 python3 -m streamvsr.cli.main batch /tmp/warmd /tmp/wo $B > $OUT/w3.txt 2>&1
echo "warm-up: $(ms) ms" | tee -a $OUT/times3.txt
run pyc_a
run nopyc PYTHONDONTWRITEBYTECODE=1 PYTHONPYCACHEPREFIX=/tmp/none
run pyc_b
rm -rf /tmp/bout; t0=$(date +%s%N)
timeout 120 /tmp/spy/bin/py-spy record --idle -r 100 -f raw -o $OUT/spy3.txt -- \
  python3 -m streamvsr.cli.main batch /tmp/bin1 /tmp/bout $B > $OUT/b3_spy.txt 2>&1
echo "spy: wall $(ms) ms; $(grep 'frames in' $OUT/b3_spy.txt | sed 's/.*: //')" | tee -a $OUT/times3.txt
python3 docs/runs/2026-11-27m/spy_tree.py $OUT/spy3.txt --depth 9 --min 0.02 > $OUT/spy3_tree.txt 2>&1
grep -c Recompiling $OUT/b3_*.txt | tee -a $OUT/times3.txt
