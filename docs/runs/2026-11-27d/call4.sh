# call 4 (H100): the MemBlocks' conv + ReLU fused too, the decoder's accuracy in bf16 with each switch, CUDA tests
set -x
pip install -q --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name --format=csv,noheader
L=epi+compile+dec+proj+fold+streams+tail+crelu+otaps
timeout 300 python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 97 --backends flex \
  --levers $L,$L+mrelu --kv-lean --flex-variants pipeline \
  --json $OUT/levers4.json 2>&1 | grep -v -i warn | tee $OUT/levers4.txt
python3 bench/tail_ops_gpu.py --decoder --json $OUT/tail_ops4.json 2>&1 | grep -v Warning | tee $OUT/tail_ops4.txt
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_fused_conv.py tests/test_flashvsr_decoders.py \
  tests/test_flashvsr_pipeline.py tests/test_flashvsr_compile.py 2>&1 | tail -3 | tee $OUT/tests4.txt
