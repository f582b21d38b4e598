# call 8 (H100): CUDA tests of the final code; the FP8 path's PSNR eager and compiled (the 30.2 dB rows of calls 2
# and 4 came after several bf16 levers in one process); the CLI end to end with this session's code
# (docs/runs/2026-11-27/cli_phases.sh, bf16 only: N=3200 frames 352x192 -> 1408x768, --compile)
set -x
mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name --format=csv,noheader
timeout 120 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_flashvsr_attention.py \
  tests/test_flashvsr_pipeline.py tests/test_flashvsr_dit.py tests/test_flashvsr_compile.py tests/test_fp8.py 2>&1 | tail -2 | tee $OUT/tests8.txt
E=fp8+gelu+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32
timeout 150 python3 bench/flashvsr.py --sizes 768x1408 --frames 41 --backends flex --flex-variants pipeline \
  --levers $E,$E+compile+dec+proj 2>&1 | grep "PSNR vs the plain" | tee $OUT/fp8psnr8.txt
sed 's/for v in bf16 fp8/for v in bf16/' docs/runs/2026-11-27/cli_phases.sh > /tmp/cli_bf16.sh
timeout 280 bash /tmp/cli_bf16.sh 2>&1 | grep -v -i warn | tee $OUT/cli8.txt
