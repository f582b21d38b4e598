# call 3 (H100): the final code (pad_to="tokens" the default, qkv not kept): the pipeline's path with tpad at both
# sizes; then the CUDA tests of attention, decoder ops, DiT (the window fill with compiled flex), pipeline, FP8, GELU
set -x
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader
N=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc
timeout 300 python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 241 --backends flex --flex-variants pipeline \
  --levers $N+tpad --json $OUT/lev3.json 2>&1 | grep -v -i warn | grep -v "^ *output\|^---" | tee $OUT/lev3.txt
timeout 200 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_flashvsr_attention.py tests/test_fused_conv.py \
  tests/test_flashvsr_dit.py tests/test_flashvsr_pipeline.py tests/test_fp8.py tests/test_fused_gelu.py 2>&1 \
  | tail -5 | tee $OUT/tests3.txt
