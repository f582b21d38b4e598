# call 2 (H100): Inductor's max-autotune (GEMM templates with fused epilogues against cuBLAS, and coordinate-descent
# tuning of its own kernels) for the compiled DiT blocks, decoder and projector, at 768x1408 (the size still short of
# its target); the Inductor cache kept in the checkout and packed into $OUT for the next call; then the same lever
# in the default mode in a second process as the baseline
set -x
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=$PWD/.icache
nvidia-smi --query-gpu=name --format=csv,noheader
N=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc
timeout 400 python3 bench/flashvsr.py --sizes 768x1408 --frames 241 --backends flex --flex-variants pipeline \
  --levers $N+qkv --compile-mode max-autotune-no-cudagraphs --json $OUT/lev2a.json 2>&1 | grep -v -i warn \
  | grep -v "^ *output\|^---" | tee $OUT/lev2a.txt
du -sh .icache
tar -cf - .icache | xz -1 -T8 | split -b 15m - $OUT/icache.tar.xz.
ls -la $OUT
unset TORCHINDUCTOR_CACHE_DIR
timeout 160 python3 bench/flashvsr.py --sizes 768x1408 --frames 241 --backends flex --flex-variants pipeline \
  --levers $N+qkv --json $OUT/lev2b.json 2>&1 | grep -v -i warn | grep -v "^ *output\|^---" | tee $OUT/lev2b.txt
