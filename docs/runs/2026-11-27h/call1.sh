# call 1 (H100): the pipeline's path (N) against N with the KV writes in the projection step (kvpre), and with the
# decoder's MemBlock memories as views and its weights channels-last as well (mview, wcl); both sizes, N first.
# The Inductor cache is written under .icache and packed into $OUT for the next call.
set -x
mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD/src TORCHINDUCTOR_CACHE_DIR=$PWD/.icache TRITON_CACHE_DIR=$PWD/.icache/triton
nvidia-smi --query-gpu=name --format=csv,noheader
N=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc
timeout 470 python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 241 --backends flex --flex-variants pipeline \
  --levers $N,$N+kvpre,$N+kvpre+mview+wcl --json $OUT/lev1.json 2>&1 | grep -v -i warn \
  | grep -v "^ *output\|^---" | tee $OUT/lev1.txt
du -sh .icache
tar -cf - .icache | xz -1 -T8 | split -b 15M - $OUT/icache.tar.xz.
ls -la $OUT
