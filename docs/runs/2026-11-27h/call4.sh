# call 4 (H100): Inductor's coordinate-descent tuning of its generated kernels (norms, modulation, RoPE, means, the
# decoder's pointwise kernels) against Inductor's defaults, the pipeline's path N at both sizes; two processes,
# the default first (one order only: the device time left allows no second)
set -x
mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name --format=csv,noheader
N=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc
B="bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 241 --backends flex --flex-variants pipeline --levers $N"
timeout 200 python3 $B --json $OUT/lev4_default.json 2>&1 | grep -v -i warn | grep -v "^ *output\|^---" \
  | tee $OUT/lev4_default.txt
TORCHINDUCTOR_COORDINATE_DESCENT_TUNING=1 timeout 255 python3 $B --json $OUT/lev4_cdt.json 2>&1 | grep -v -i warn \
  | grep -v "^ *output\|^---" | tee $OUT/lev4_cdt.txt
