# call 6 (H100): the bench's piped figure with a caller that reads outputs back (--lag 2, the default now) over
# 241 frames: the old path, the shared ring, + rope32, + the DiT's stream first; the last also with --lag 0 (the
# old window). Then the CLI (uint8 frames in and out now) on a 1600-frame clip, plain and under py-spy --gil.
set -x
mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name --format=csv,noheader
L=epi+compile+dec+proj+fold+streams+tail+crelu+otaps+mrelu
B="python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 241 --backends flex --flex-variants pipeline --kv-lean"
timeout 330 $B --levers $L,$L+ring,$L+ring+rope32,$L+ring+rope32+pwork --json $OUT/lag6.json 2>&1 \
  | grep -v -i warn | tail -10 | tee $OUT/lag6.txt
python3 - <<'PY' | tee -a $OUT/lag6.txt
import json
for r in json.load(open("/root/out/lag6.json"))["results"]:
    if "piped_fps" in r:
        print(r["out_hw"], r["lever"], "piped(lag 2) %.2f  piped_open %.2f  steady %.2f" % (r["piped_fps"], r["piped_open_fps"], r["steady_fps"]))
PY
python3 bench/cli_run.py prepare --frames 1600
A="--model flashvsr --weights /tmp/w13 --compile --progress json --overwrite --encoder-opt preset=veryfast"
python3 -m streamvsr.cli.main upscale /tmp/warm.mp4 -o /tmp/warm.out.mp4 $A > /dev/null 2>&1
python3 -m streamvsr.cli.main upscale /tmp/in.mp4 -o /tmp/out.mp4 $A > /tmp/p0.jsonl 2>/tmp/e0.txt
python3 bench/cli_run.py rate /tmp/p0.jsonl uint8 | tee $OUT/cli6.txt
timeout 100 /tmp/site/bin/py-spy record --gil --rate 100 --format raw -o /tmp/gil6.txt -- \
  python3 -m streamvsr.cli.main upscale /tmp/in.mp4 -o /tmp/out.mp4 $A > /tmp/p1.jsonl 2>/tmp/e1.txt
python3 bench/cli_run.py rate /tmp/p1.jsonl py-spy-gil | tee -a $OUT/cli6.txt
python3 - <<'PY' | tee $OUT/gil6_summary.txt
import collections
thr, leaf, sv = collections.Counter(), collections.Counter(), collections.Counter()
for line in open("/tmp/gil6.txt"):
    stack, _, n = line.rstrip().rpartition(" ")
    if not stack: continue
    n = int(n); fr = stack.split(";")
    thr[fr[0]] += n; leaf[(fr[0][:40], fr[-1][:90])] += n
    s = [f for f in fr if "streamvsr/" in f or "av/" in f]
    sv[(fr[0][:40], s[-1][:90] if s else "-")] += n
print("GIL samples by thread:"); [print(v, k) for k, v in thr.most_common(12)]
print("by leaf:"); [print(v, k) for k, v in leaf.most_common(40)]
print("by deepest streamvsr/av frame:"); [print(v, k) for k, v in sv.most_common(40)]
PY
