# call 3 (H100): the final code (kvpre, mview and wcl removed): the pipeline's bf16 path N and the same with FP8
# linears (fp8+gelu for epi) at both sizes; then the CUDA tests of attention, decoder ops, DiT, pipeline and FP8
set -x
mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name --format=csv,noheader
R=compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc
timeout 330 python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 241 --backends flex --flex-variants pipeline \
  --levers epi+$R,fp8+gelu+$R --json $OUT/lev3.json 2>&1 | grep -v -i warn | grep -v "^ *output\|^---" | tee $OUT/lev3.txt
timeout 150 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_flashvsr_attention.py tests/test_fused_conv.py \
  tests/test_flashvsr_dit.py tests/test_flashvsr_pipeline.py tests/test_fp8.py 2>&1 | tail -3 | tee $OUT/tests3.txt
