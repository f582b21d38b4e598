#!/usr/bin/env bash
# CLI end to end on one H100: this session's code (Hopper FlexAttention tiles) against the code before it
# (commit 8722c51, extracted to .data/old_src), random official-size weights, --compile, with and without --fp8.
set -e
export PYTHONPATH=/tmp/site:$PWD/src
N=${N:-3200}
python3 bench/cli_run.py prepare --frames "$N"
A="--model flashvsr --weights /tmp/w13 --compile --encoder-opt preset=veryfast --progress json --overwrite"
for v in new old; do  # fill the compile caches of both trees
  case $v in new) P=/tmp/site:$PWD/src;; old) P=/tmp/site:$PWD/.data/old_src/src;; esac
  PYTHONPATH=$P python3 -m streamvsr.cli.main upscale /tmp/warm.mp4 -o /tmp/warm_$v.mp4 $A --fp8 2>&1 | tail -1 > /dev/null
done
for run in "new --fp8" "old --fp8" "new" "old"; do
  set -- $run
  case $1 in new) P=/tmp/site:$PWD/src;; old) P=/tmp/site:$PWD/.data/old_src/src;; esac
  s=$(date +%s)
  PYTHONPATH=$P python3 -m streamvsr.cli.main upscale /tmp/in.mp4 -o /tmp/out.mp4 $A ${2:-} 2>&1 | tail -1 | sed "s/^/$run: /"
  echo "$run: wall $(( $(date +%s) - s )) s"
done
