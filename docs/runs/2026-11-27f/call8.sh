# call 8 (H100, call 7's warm machine): call 7 again after the fix (a constexpr was reassigned in the unrolled loop,
# which Triton's interpreter had accepted); end to end only the radix lever (call 7 gave the pipeline's row)
set -x
mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD/src
timeout 40 python3 scripts/topk_micro.py 2>&1 | tee $OUT/topk8.txt
timeout 30 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_flashvsr_attention.py -k radix 2>&1 | tail -1 | tee $OUT/tests8.txt
P=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder
timeout 100 python3 bench/flashvsr.py --sizes 768x1408 --frames 241 --backends flex --flex-variants pipeline \
  --levers $P+radix --json $OUT/radix8.json 2>&1 | grep -v -i warn | grep -v "^ *output\|^---" | tee $OUT/radix8.txt
