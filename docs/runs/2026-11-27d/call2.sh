# call 2 (H100): conv + ReLU with channels-last input, and a profile by launching op of the best path
set -x
pip install -q --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name --format=csv,noheader
L=epi+compile+dec+proj+fold+streams+tail
timeout 300 python3 bench/flashvsr.py --sizes 768x1408 --frames 97 --backends flex \
  --levers $L+otaps,$L+crelu+otaps,$L --kv-lean --flex-variants pipeline \
  --json $OUT/levers2.json 2>&1 | grep -v -i warn | tee $OUT/levers2.txt
timeout 200 python3 bench/flashvsr.py --sizes 768x1408 --frames 41 --backends flex \
  --levers $L+otaps --kv-lean --flex-variants pipeline --profile 3 \
  --json $OUT/profile.json 2>&1 | grep -v -i warn | tee $OUT/profile.txt
