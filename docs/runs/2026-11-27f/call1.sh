# call 1 (H100): the attention kernel with each head's query blocks sorted by their work (most first) against
# the launch order; the pipeline's path at both sizes with the host's time per push; a profile with the GPU's
# busy time (union of kernel intervals) per steady chunk
set -x
mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name --format=csv,noheader
T=USE_TMA=true,BLOCK_M=128,BLOCK_N=128,num_warps=8,num_stages=3
timeout 150 python3 bench/attention_kernels.py --sizes 768x1408,1080x1920 \
  --variants flex-one,flex-sorted,flex-presorted,flex-ascending,flex-one --flex-variants "$T" \
  --json $OUT/sort1.json 2>&1 | grep -v -i warn | tail -16 | tee $OUT/sort1.txt
P=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32
timeout 240 python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 241 --backends flex --flex-variants pipeline \
  --levers $P --json $OUT/host1.json 2>&1 | grep -v -i warn | tail -6 | tee $OUT/host1.txt
timeout 150 python3 bench/flashvsr.py --sizes 768x1408 --frames 41 --backends flex --flex-variants pipeline \
  --levers $P --profile 3 --json $OUT/prof1.json 2>&1 | grep -v -i warn | tee $OUT/prof1.txt
