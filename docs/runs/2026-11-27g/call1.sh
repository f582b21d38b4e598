# call 1 (H100): the split radix select alone (never run on a GPU before); profiles of the pipeline's path at both
# sizes with the new attribution (a row per op and input shapes, the longest single kernels with their stream, the
# kernel time per stream, the busy union without the compiled graphs' annotation ranges); the split radix select
# end to end against the pipeline's path, radix2 first
set -x
mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name --format=csv,noheader
timeout 60 python3 scripts/topk_micro.py 2>&1 | tee $OUT/topk1.txt
P=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder
timeout 200 python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 41 --backends flex --flex-variants pipeline \
  --levers $P --profile 3 --json $OUT/prof1.json 2>&1 | grep -v -i warn | tee $OUT/prof1.txt
timeout 260 python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 241 --backends flex --flex-variants pipeline \
  --levers $P+radix2,$P --json $OUT/radix1.json 2>&1 | grep -v -i warn | grep -v "^ *output\|^---" | tee $OUT/radix1.txt
