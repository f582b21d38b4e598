# call 4 (H100): end to end, the block means from the compiled projection step (means) and each window's blocks
# fewest visible key blocks first (vorder), against the pipeline's path; the flex call now always carries the
# block mask's mask_mod (never evaluated for full blocks); the CUDA tests of attention, DiT and pipeline
set -x
mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name --format=csv,noheader
P=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32
timeout 400 python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 241 --backends flex --flex-variants pipeline \
  --levers $P+means+vorder,$P+means,$P --json $OUT/lev4.json 2>&1 | grep -v -i warn | grep -v "^ *output\|^---" | tee $OUT/lev4.txt
timeout 150 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_flashvsr_attention.py tests/test_flashvsr_dit.py \
  tests/test_flashvsr_pipeline.py 2>&1 | tail -4 | tee $OUT/tests4.txt
