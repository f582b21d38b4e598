# call 5 (H100): why the CLI (48.4 fps bf16 in call 4) runs below the model's piped rate (62 to 63): the model's
# piped rate over 481 frames, then the CLI on a 1600-frame clip under py-spy, once sampling only the thread that
# holds the GIL, once every thread (idle included)
set -x
mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name --format=csv,noheader
P=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32
timeout 150 python3 bench/flashvsr.py --sizes 768x1408 --frames 481 --backends flex --flex-variants pipeline \
  --levers $P --json $OUT/long5.json 2>&1 | grep -v -i warn | tail -3 | tee $OUT/long5.txt
python3 bench/cli_run.py prepare --frames 1600
A="--model flashvsr --weights /tmp/w13 --compile --progress json --overwrite --encoder-opt preset=veryfast"
python3 -m streamvsr.cli.main upscale /tmp/warm.mp4 -o /tmp/warm.out.mp4 $A > /dev/null 2>&1
python3 -m streamvsr.cli.main upscale /tmp/in.mp4 -o /tmp/out.mp4 $A > /tmp/p0.jsonl 2>/tmp/e0.txt
python3 bench/cli_run.py rate /tmp/p0.jsonl plain | tee $OUT/cli5.txt
timeout 100 /tmp/site/bin/py-spy record --gil --rate 200 --format raw -o $OUT/gil5.txt -- \
  python3 -m streamvsr.cli.main upscale /tmp/in.mp4 -o /tmp/out.mp4 $A > /tmp/p1.jsonl 2>/tmp/e1.txt
python3 bench/cli_run.py rate /tmp/p1.jsonl py-spy-gil | tee -a $OUT/cli5.txt
timeout 100 /tmp/site/bin/py-spy record --idle --threads --rate 100 --format raw -o $OUT/all5.txt -- \
  python3 -m streamvsr.cli.main upscale /tmp/in.mp4 -o /tmp/out.mp4 $A > /tmp/p2.jsonl 2>/tmp/e2.txt
python3 bench/cli_run.py rate /tmp/p2.jsonl py-spy-all | tee -a $OUT/cli5.txt
tail -3 /tmp/e1.txt /tmp/e2.txt
