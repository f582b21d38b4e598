# call 3 (H100): the attention kernel with the query blocks sorted by work inside flex_block_attention (gathers
# timed); end to end: the block means from the compiled projection step (means), and with the sorted query
# blocks (qsort), against the pipeline's path; the CUDA tests of the attention module
set -x
mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name --format=csv,noheader
timeout 60 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_flashvsr_attention.py 2>&1 | tail -3 | tee $OUT/tests3.txt
T=USE_TMA=true,BLOCK_M=128,BLOCK_N=128,num_warps=8,num_stages=3
timeout 120 python3 bench/attention_kernels.py --sizes 768x1408,1080x1920 \
  --variants flex-one,flex-sorted,flex-presorted,flex-one,flex-sorted --flex-variants "$T" \
  --json $OUT/sort3.json 2>&1 | grep -v -i warn | tail -12 | tee $OUT/sort3.txt
P=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32
timeout 380 python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 241 --backends flex --flex-variants pipeline \
  --levers $P+means,$P+means+qsort,$P --json $OUT/lev3.json 2>&1 | grep -v -i warn | grep -v "^ *output\|^---" | tee $OUT/lev3.txt
