#!/usr/bin/env bash
# CLI end to end on one GPU: new code (streams), new code --no-streams, the code of HEAD before (old_src)
set -e
export PYTHONPATH=/tmp/site:$PWD/src
N=${N:-800}
python3 bench/cli_run.py prepare --frames "$N"
A="--model flashvsr --weights /tmp/w13 --compile --encoder-opt preset=veryfast --progress json --overwrite"
python3 -m streamvsr.cli.main upscale /tmp/warm.mp4 -o /tmp/warm_out.mp4 $A 2>&1 | tail -1
for v in new nostreams old; do
  case $v in
    new) P=/tmp/site:$PWD/src; X="";;
    nostreams) P=/tmp/site:$PWD/src; X="--no-streams";;
    old) P=/tmp/site:$PWD/.data/old_src/src; X="";;
  esac
  s=$(date +%s)
  PYTHONPATH=$P python3 -m streamvsr.cli.main upscale /tmp/in.mp4 -o /tmp/out_$v.mp4 $A $X 2>&1 | tail -1 | sed "s/^/$v: /"
  echo "$v wall $(( $(date +%s) - s )) s"
done
