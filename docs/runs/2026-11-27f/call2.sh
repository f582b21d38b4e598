# call 2 (H100): is the host the limit? the pipeline's path with the host's time per push and one push alone on an
# idle GPU (launch time against completion), with and without Dynamo's guard evaluation; cProfile of the host
set -x
mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name --format=csv,noheader
P=epi+compile+dec+proj+fold+ring+streams+pwork+tail+crelu+otaps+mrelu+rope32
timeout 330 python3 bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 241 --backends flex --flex-variants pipeline \
  --levers $P,$P+noguard --json $OUT/guard2.json 2>&1 | grep -v -i warn | grep -v "^ *output\|^---" | tee $OUT/guard2.txt
timeout 200 python3 bench/flashvsr.py --sizes 768x1408 --frames 41 --backends flex --flex-variants pipeline \
  --levers $P --host-profile 4 --json $OUT/hostprof2.json 2>&1 | grep -v -i warn | tee $OUT/hostprof2.txt
