# call 5 (H100): end to end, the block means from the compiled projection step (means) and each window's blocks
# fewest visible key blocks first (vorder), against the pipeline's path (call 4 failed: a mask_mod in
# the compiled call cost shared memory past the 3-stage tiles); the CUDA tests of attention, DiT and pipeline
set -x
mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name --format=csv,noheader
P=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32
timeout 400 python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 241 --backends flex --flex-variants pipeline \
  --levers $P+means+vorder,$P+means,$P --json $OUT/lev5.json 2>&1 | grep -v -i warn | grep -v "^ *output\|^---" | tee $OUT/lev5.txt
timeout 150 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_flashvsr_attention.py tests/test_flashvsr_dit.py \
  tests/test_flashvsr_pipeline.py 2>&1 | tail -4 | tee $OUT/tests5.txt
