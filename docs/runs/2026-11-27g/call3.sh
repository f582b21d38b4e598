# call 3 (H100): end to end, the output step compiled (post; the lever was removed after this call: no gain) with radixa and upc, against the pipeline's path, and
# against radixa+upc alone; two processes (the bench drops a repeated lever), the new path first in the first one
set -x
mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name --format=csv,noheader
P=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder
n=0
for L in "$P+radixa+upc+post,$P:290" "$P+radixa+upc,$P+radixa+upc+post:250"; do
  n=$((n+1))
  timeout ${L##*:} python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 241 --backends flex \
    --flex-variants pipeline --levers ${L%:*} --json $OUT/lev3_$n.json 2>&1 | grep -v -i warn \
    | grep -v "^ *output\|^---" | tee $OUT/lev3_$n.txt
done
