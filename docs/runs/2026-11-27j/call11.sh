#!/bin/bash
# tenth session, call 11: the CLI end to end with this session's defaults (blists, ffin), bf16, --compile:
# 3200 frames 352x192 -> 1408x768, random official-size weights, x264 veryfast (as docs/runs/2026-11-27/cli_phases.sh,
# bf16 only); PyAV from the carried .whl/avsite.tar.xz (the av 18.1.0 abi3 wheel, unpacked)
mkdir -p /tmp/site && tar -xJf .whl/avsite.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
python3 -c "import av; print('av', av.__version__)"
timeout 200 python3 bench/cli_run.py prepare --frames 3200 2>&1 | tail -3; ls -la /tmp/in.mp4 /tmp/warm.mp4
A="--model flashvsr --weights /tmp/w13 --compile --progress json --overwrite --encoder-opt preset=veryfast"
timeout 200 python3 -m streamvsr.cli.main upscale /tmp/warm.mp4 -o /tmp/warm.out.mp4 $A > /dev/null 2> $OUT/warm11.txt
timeout 200 python3 -m streamvsr.cli.main upscale /tmp/in.mp4 -o /tmp/out.mp4 $A > /tmp/p_bf16.jsonl 2> $OUT/e11.txt
python3 bench/cli_run.py rate /tmp/p_bf16.jsonl bf16 | tee $OUT/cli11.txt
tail -c 600 $OUT/e11.txt
