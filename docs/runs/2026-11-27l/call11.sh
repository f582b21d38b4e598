#!/bin/bash
# twelfth session, call 11: the CLI end to end, bf16, --compile, 2400 frames 352x192 -> 1408x768, random
# official-size weights, x264 veryfast; first with flash-attn-4 importable (the library's "auto" takes it), then
# without it on the path (FlexAttention); PyAV from the carried .whl/avsite.tar.xz
source docs/runs/2026-11-27l/fa4_site.sh
mkdir -p /tmp/avsite && tar -xJf .whl/avsite.tar.xz -C /tmp/avsite
FA=$PYTHONPATH:/tmp/avsite
FLEX=$PWD/src:/tmp/avsite
PYTHONPATH=$FLEX timeout 150 python3 bench/cli_run.py prepare --frames 2400 2>&1 | tail -3
A="--model flashvsr --weights /tmp/w13 --compile --progress json --overwrite --encoder-opt preset=veryfast"
for run in fa4 flex; do
  if [ $run = fa4 ]; then export PYTHONPATH=$FA; else export PYTHONPATH=$FLEX; fi
  python3 -c "from streamvsr.models.flashvsr import fa4; print('$run: flash-attn-4 importable:', fa4.installed())"
  timeout 200 python3 -m streamvsr.cli.main upscale /tmp/warm.mp4 -o /tmp/warm.out.mp4 $A > /dev/null 2> $OUT/warm11_$run.txt
  timeout 150 python3 -m streamvsr.cli.main upscale /tmp/in.mp4 -o /tmp/out.mp4 $A > /tmp/p_$run.jsonl 2> $OUT/e11_$run.txt
  python3 bench/cli_run.py rate /tmp/p_$run.jsonl $run | tee -a $OUT/cli11.txt
  tail -c 300 $OUT/e11_$run.txt
done
