# call 2 (H100): CUDA tests, then the shared ring + DiT-first priority against the old path in alternating order,
# the priority alone, rope32 on top, and the FP8 path with both
set -x
pip install -q --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name --format=csv,noheader
timeout 200 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_flashvsr_attention.py \
  tests/test_flashvsr_pipeline.py tests/test_flashvsr_dit.py tests/test_flashvsr_compile.py 2>&1 | tail -3 | tee $OUT/tests2.txt
L=epi+compile+dec+proj+fold+streams+tail+crelu+otaps+mrelu
P=$L+ring+pwork
F=fp8+gelu+compile+dec+proj+fold+streams+tail+crelu+otaps+mrelu+ring+pwork
timeout 380 python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 97 --backends flex \
  --levers $L,$P,$P+rope32,$L+pwork,$P,$L,$F --kv-lean --flex-variants pipeline \
  --json $OUT/levers2.json 2>&1 | grep -v -i warn | tee $OUT/levers2.txt
