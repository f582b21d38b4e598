# call 1 (H100): frames padded to whole tokens with the DiT's window fill (tpad) and the fused q/k/v GEMM (qkv)
# against the eighth session's pipeline N, at 1080p (where tpad computes 1088 instead of 1152 rows) and at
# 768x1408 (a multiple of 128 already: tpad changes nothing there, so only qkv)
set -x
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader
N=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc
timeout 330 python3 bench/flashvsr.py --sizes 1080x1920 --frames 241 --backends flex --flex-variants pipeline \
  --levers $N,$N+tpad,$N+tpad+qkv --json $OUT/lev1a.json 2>&1 | grep -v -i warn | grep -v "^ *output\|^---" | tee $OUT/lev1a.txt
timeout 230 python3 bench/flashvsr.py --sizes 768x1408 --frames 241 --backends flex --flex-variants pipeline \
  --levers $N+qkv,$N --json $OUT/lev1b.json 2>&1 | grep -v -i warn | grep -v "^ *output\|^---" | tee $OUT/lev1b.txt
