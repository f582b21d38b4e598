# call 9 (H100): call 4b's lever sequence again (FP8 last, 30.18 dB there) with Dynamo's recompile messages kept:
# does a compiled function hit the recompile limit and fall back to eager?
set -x
mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD/src
L=epi+compile+dec+proj+fold+streams+tail+crelu+otaps+mrelu
P=$L+ring+pwork
F=fp8+gelu+compile+dec+proj+fold+streams+tail+crelu+otaps+mrelu+ring+pwork+rope32
TORCH_LOGS=recompiles timeout 200 python3 bench/flashvsr.py --sizes 768x1408 --frames 33 --backends flex --kv-lean \
  --flex-variants pipeline --levers $L,$P,$P+rope32,$L+pwork,$F > /tmp/log9.txt 2>&1
grep -i -E "PSNR vs the plain|recompile_limit|hit config|cache_size_limit|falling back" /tmp/log9.txt | cut -c1-400 | tee $OUT/recompiles9.txt
grep -c -i "Recompiling function" /tmp/log9.txt | tee -a $OUT/recompiles9.txt
grep -i "Recompiling function" /tmp/log9.txt | sed 's/.*Recompiling function \([^ ]*\) in \([^ ]*\).*/\1 \2/' | sort | uniq -c | tee -a $OUT/recompiles9.txt
