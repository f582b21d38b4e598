# call 3 (H100): the new pipeline path (P, rope32 now part of it) against the old one (L) in both orders at both
# sizes; then which part moved the FP8 path's PSNR against the plain model (33.36 dB last session, 30.16 in call 2)
set -x
pip install -q --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name --format=csv,noheader
L=epi+compile+dec+proj+fold+streams+tail+crelu+otaps+mrelu
P=$L+ring+pwork+rope32
B="python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 97 --backends flex --kv-lean --flex-variants pipeline"
timeout 200 $B --levers $P,$L --json $OUT/ab3a.json 2>&1 | grep -v -i warn | tee $OUT/ab3a.txt
timeout 200 $B --levers $L,$P --json $OUT/ab3b.json 2>&1 | grep -v -i warn | tee $OUT/ab3b.txt
F0=fp8+gelu+compile+dec+proj+fold+streams+tail+crelu+otaps
timeout 170 python3 bench/flashvsr.py --sizes 768x1408 --frames 33 --backends flex --kv-lean --flex-variants pipeline \
  --levers $F0,$F0+ropestack,$F0+ring,$F0+mrelu,$F0+pwork,$F0+rope32 --json $OUT/fp8psnr3.json 2>&1 \
  | grep "PSNR vs the plain" | tee $OUT/fp8psnr3.txt
