# call 5 (H100): FP8 linears (fp8+gelu for epi) with the frames padded to whole tokens at 1080p, the final code
set -x
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader
R=compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc+tpad
timeout 185 python3 bench/flashvsr.py --sizes 1080x1920 --frames 241 --backends flex --flex-variants pipeline \
  --levers fp8+gelu+$R --json $OUT/lev5.json 2>&1 | grep -v -i warn | grep -v "^ *output\|^---" | tee $OUT/lev5.txt
