# call 5 (H100): the decoder tests that failed in call 4, with their messages; the CLI with the default model with the
# tail kernels (now the CUDA default) and without them, frames compared
pip install -q --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD/src
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_flashvsr_decoders.py --tb=short 2>&1 \
  | grep -E "^E  |^tests.*Error|passed|failed" | head -40 | tee $OUT/tests5.txt
run() {  # $1 = on|off, $2 = output folder
  python3 - "$1" "$2" <<'PY'
import sys, time
import streamvsr.pipeline.flashvsr as f
if sys.argv[1] == "off":
    f._tail_kernels = lambda decoder, on=True: None
from streamvsr.cli.main import main
sys.argv = ["streamvsr", "upscale", "assets/sample.mp4", "-o", sys.argv[2], "--format", "png", "--device", "cuda", "--overwrite"]
t = time.time()
try:
    main()
except SystemExit as e:
    print("exit", e.code)
print("wall", round(time.time() - t, 2))
PY
}
mkdir -p /tmp/on /tmp/off
run on /tmp/on 2>&1 | grep -v -i warn | tail -3 | tee $OUT/cli5.txt
run off /tmp/off 2>&1 | grep -v -i warn | tail -3 | tee -a $OUT/cli5.txt
python3 scripts/compare_png_dirs.py /tmp/off /tmp/on 2>&1 | tail -3 | tee -a $OUT/cli5.txt
