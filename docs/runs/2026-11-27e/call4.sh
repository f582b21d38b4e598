# call 4 (H100): the FP8 path's PSNR against the plain model, alone in a fresh process and after call 2's levers;
# then the CLI end to end with this session's defaults (docs/runs/2026-11-27/cli_phases.sh: 3200 frames
# 352x192 -> 1408x768, --compile, bf16 then --fp8)
set -x
pip install -q --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name --format=csv,noheader
L=epi+compile+dec+proj+fold+streams+tail+crelu+otaps+mrelu
P=$L+ring+pwork
F=fp8+gelu+compile+dec+proj+fold+streams+tail+crelu+otaps+mrelu+ring+pwork+rope32
B="python3 bench/flashvsr.py --sizes 768x1408 --frames 33 --backends flex --kv-lean --flex-variants pipeline"
timeout 60 $B --levers $F 2>&1 | grep "PSNR vs the plain" | tee $OUT/fp8psnr4a.txt
timeout 150 $B --levers $L,$P,$P+rope32,$L+pwork,$F 2>&1 | grep "PSNR vs the plain" | tee $OUT/fp8psnr4b.txt
timeout 360 bash docs/runs/2026-11-27/cli_phases.sh 2>&1 | grep -v -i warn | tee $OUT/cli4.txt
