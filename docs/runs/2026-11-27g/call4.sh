# call 4 (H100): the pipeline's new path (radixa and upc now defaults) against the sixth session's, the old path
# first (call 3 had the new path first); then the CUDA tests of attention, decoder ops, DiT and pipeline
set -x
mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name --format=csv,noheader
P=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder
timeout 270 python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 241 --backends flex --flex-variants pipeline \
  --levers $P,$P+radixa+upc --json $OUT/lev4.json 2>&1 | grep -v -i warn | grep -v "^ *output\|^---" | tee $OUT/lev4.txt
timeout 90 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_flashvsr_attention.py tests/test_fused_conv.py \
  tests/test_flashvsr_dit.py tests/test_flashvsr_pipeline.py 2>&1 | tail -3 | tee $OUT/tests4.txt
