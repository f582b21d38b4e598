# call 2 (H100, call 1's warm machine): the CUDA tests of the decoder's fused ops (the sub-pixel up-convolution new);
# end to end, the radix select in the faster form by row length (radixa) and the TCDecoder's nearest x2 upsampling +
# 3x3 convolution as one sub-pixel convolution (upc), in two processes in opposite order (the bench drops a
# repeated lever)
set -x
mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD/src
timeout 90 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_fused_conv.py tests/test_flashvsr_attention.py \
  -k "cuda or radix" 2>&1 | tail -2 | tee $OUT/tests2.txt
P=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder
for L in $P+radixa+upc,$P+radixa $P+radixa,$P+radixa+upc; do
  n=$((n+1))
  timeout 235 python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 241 --backends flex --flex-variants pipeline \
    --levers $L --json $OUT/lev2_$n.json 2>&1 | grep -v -i warn | grep -v "^ *output\|^---" | tee $OUT/lev2_$n.txt
done
