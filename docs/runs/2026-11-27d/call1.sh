# call 1 (H100): the tail ops alone, their CUDA tests, then the levers end to end at 768x1408
set -x
pip install -q --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name --format=csv,noheader
python3 bench/tail_ops_gpu.py --json $OUT/tail_ops.json 2>&1 | grep -v Warning | tee $OUT/tail_ops.txt
python3 -m pytest -q -p no:cacheprovider tests/test_fused_conv.py 2>&1 | tail -3
L=epi+compile+dec+proj+fold+streams+tail
timeout 420 python3 bench/flashvsr.py --sizes 768x1408 --frames 97 --backends flex \
  --levers $L,$L+otaps,$L+crelu,$L+crelu+otaps,$L+spare+crelu+otaps --kv-lean --flex-variants pipeline \
  --json $OUT/levers.json 2>&1 | grep -v -i warn | tee $OUT/levers.txt
