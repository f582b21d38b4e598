# call 1 (H100): RoPE forms in the compiled pre(), then the shared KV ring and the stream priorities at both sizes
set -x
pip install -q --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name --format=csv,noheader
timeout 100 python3 bench/rope_gpu.py --json $OUT/rope1.json 2>&1 | grep -v Warning | tee $OUT/rope1.txt
L=epi+compile+dec+proj+fold+streams+tail+crelu+otaps+mrelu
timeout 480 python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 97 --backends flex \
  --levers $L,$L+ring,$L+ring+pwork,$L+ring+pdec --kv-lean --flex-variants pipeline \
  --json $OUT/levers1.json 2>&1 | grep -v -i warn | tee $OUT/levers1.txt
