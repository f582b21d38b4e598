# call 6 (H100, the warm machine of call 5): the FP8 path with this session's two levers
set -x
mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD/src
F=fp8+gelu+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32
timeout 280 python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 241 --backends flex --flex-variants pipeline \
  --levers $F+means+vorder --json $OUT/fp86.json 2>&1 | grep -v -i warn | grep -v "^ *output\|^---" | tee $OUT/fp86.txt
