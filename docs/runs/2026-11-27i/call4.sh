# call 4 (H100): the window-fill maps kept per grid instead of built per chunk (building them read a count back
# from the GPU every chunk, a host sync); the pipeline's path with tpad at 1080p, and the DiT's CUDA tests
set -x
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader
N=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc
timeout 220 python3 bench/flashvsr.py --sizes 1080x1920 --frames 241 --backends flex --flex-variants pipeline \
  --levers $N+tpad --json $OUT/lev4.json 2>&1 | grep -v -i warn | grep -v "^ *output\|^---" | tee $OUT/lev4.txt
timeout 90 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_flashvsr_dit.py 2>&1 | tail -2 | tee $OUT/tests4.txt
