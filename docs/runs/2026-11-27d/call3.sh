# call 3 (H100): the tail ops again (taps in planes), then the levers at both sizes, FP8 last
set -x
pip install -q --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name --format=csv,noheader
python3 bench/tail_ops_gpu.py --json $OUT/tail_ops3.json 2>&1 | grep -v Warning | tee $OUT/tail_ops3.txt
python3 -m pytest -q -p no:cacheprovider tests/test_fused_conv.py 2>&1 | tail -1
L=epi+compile+dec+proj+fold+streams+tail
F=fp8+gelu+compile+dec+proj+fold+streams+tail+crelu+otaps
timeout 470 python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 97 --backends flex \
  --levers $L,$L+crelu,$L+crelu+otaps,$F --kv-lean --flex-variants pipeline \
  --json $OUT/levers3.json 2>&1 | grep -v -i warn | tee $OUT/levers3.txt
