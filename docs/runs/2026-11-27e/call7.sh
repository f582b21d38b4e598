# call 7 (H100): the LCSA threshold (topk + amin against kthvalue); FlexAttention tiles for the one-piece call
# the shared ring now makes; the pipeline path (bias built once per chunk now) with and without kthvalue, and the
# FP8 path, with the reading caller (--lag 2) over 241 frames
set -x
mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name --format=csv,noheader
timeout 60 python3 scripts/topk_micro.py 2>&1 | tee $OUT/topk7.txt
T=USE_TMA=true,BLOCK_M=128,BLOCK_N=128,num_warps=8
timeout 150 python3 bench/attention_kernels.py --sizes 768x1408,1080x1920 --variants bf16,flex-one \
  --flex-variants "$T,num_stages=3;$T,num_stages=4;USE_TMA=true,BLOCK_M=128,BLOCK_N=64,num_warps=8,num_stages=3;$T,num_stages=3,num_consumer_groups=2,num_buffers_warp_spec=3" \
  --json $OUT/tiles7.json 2>&1 | grep -v -i warn | tail -20 | tee $OUT/tiles7.txt
P=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32
F=fp8+gelu+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32
timeout 300 python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 241 --backends flex --flex-variants pipeline \
  --levers $P,$P+kthv,$F --json $OUT/lev7.json 2>&1 | grep -v -i warn | tail -8 | tee $OUT/lev7.txt
