# call 2 (H100): the decoder's MemBlock memories as views (mview) and its weights channels-last (wcl) against the
# pipeline's path N, at both sizes; two processes, in opposite orders. (The Inductor cache of call 1 could not come along: the carried files would pass 64 MiB.)
set -x
mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name --format=csv,noheader
N=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc
n=0
for L in "$N,$N+mview,$N+mview+wcl" "$N+mview+wcl,$N+mview,$N"; do
  n=$((n+1))
  timeout 275 python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 241 --backends flex \
    --flex-variants pipeline --levers $L --json $OUT/lev2_$n.json 2>&1 | grep -v -i warn \
    | grep -v "^ *output\|^---" | tee $OUT/lev2_$n.txt
done
