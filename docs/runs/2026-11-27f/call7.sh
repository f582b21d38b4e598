# call 7 (H100): the LCSA threshold by a Triton radix select (one program per row, four byte passes) against
# torch.topk + amin, alone and end to end at 768x1408; its CUDA test
set -x
mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD/src
timeout 60 python3 scripts/topk_micro.py 2>&1 | tee $OUT/topk7.txt
timeout 40 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_flashvsr_attention.py -k radix 2>&1 | tail -1 | tee $OUT/tests7.txt
P=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder
timeout 150 python3 bench/flashvsr.py --sizes 768x1408 --frames 241 --backends flex --flex-variants pipeline \
  --levers $P,$P+radix --json $OUT/radix7.json 2>&1 | grep -v -i warn | grep -v "^ *output\|^---" | tee $OUT/radix7.txt
