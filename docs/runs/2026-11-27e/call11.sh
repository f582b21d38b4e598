# call 11 (H100): the CLI with the batched device upsampling (new) and the per-frame one (old, call10_old_pillow.py)
# in alternating order, 1200-frame clip, bf16, --compile (the rate from frame 400 on)
set -x
mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD/src
python3 bench/cli_run.py prepare --frames 1200
A="--model flashvsr --weights /tmp/w13 --compile --progress json --overwrite --encoder-opt preset=veryfast"
python3 -m streamvsr.cli.main upscale /tmp/warm.mp4 -o /tmp/warm.out.mp4 $A > /dev/null 2>&1
OLD="import streamvsr.ops.resize as r; exec(open('docs/runs/2026-11-27e/call10_old_pillow.py').read(), r.__dict__)"
for i in 1 2; do
  python3 -m streamvsr.cli.main upscale /tmp/in.mp4 -o /tmp/out.mp4 $A > /tmp/p_new$i.jsonl 2>/dev/null
  python3 bench/cli_run.py rate /tmp/p_new$i.jsonl new$i | tee -a $OUT/cli11.txt
  python3 -c "$OLD; from streamvsr.cli.main import main; main()" upscale /tmp/in.mp4 -o /tmp/out.mp4 $A > /tmp/p_old$i.jsonl 2>/dev/null
  python3 bench/cli_run.py rate /tmp/p_old$i.jsonl old$i | tee -a $OUT/cli11.txt
done
