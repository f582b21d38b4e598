#!/usr/bin/env bash
# The speed measurements of the next GPU session (docs/performance.md, "Next GPU session"), in one command.
#
#   STEPS="fp8 levers sdvsr e2e" scripts/gpu_speed_session.sh      # on one H100; carry .whl and .whl-sd
#
# Steps (each under its own time limit, results in OUT_DIR):
#   fp8     the CUDA FP8 tests, full tracebacks                 -> fp8_tests.txt
#   levers  FlashVSR speed levers at 768x1408 and 1080x1920     -> levers.json, levers.txt
#   sdvsr   Stream-DiffVSR at 720p and 1080p, expandable_segments, standard and channels-last UNet
#                                                              -> sdvsr*.json, sdvsr*.txt
#   e2e     end to end: streamvsr upscale of a 1600-frame clip with random official-size weights, default
#           encoder preset and veryfast                        -> e2e.txt
# Environment: STEPS [all four]  OUT_DIR [$OUT]  PYTHON [python3]  WHEELS [".whl .whl-sd": folders of wheels]
# (.whl: PyAV + importlib_metadata; .whl-sd: diffusers, kept apart so the training calls' carry stays small)
set -uo pipefail

PY=${PYTHON:-python3}
O=${OUT_DIR:-${OUT:-/tmp/out}}
STEPS=${STEPS:-fp8 levers sdvsr e2e}
mkdir -p "$O"
wheels=()
for d in ${WHEELS:-.whl .whl-sd}; do
    [ -d "$d" ] && wheels+=("$d"/*.whl)
done
if [ ${#wheels[@]} -gt 0 ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "${wheels[@]}" || exit 2
fi
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi -L | tee "$O/gpu.txt"

for step in $STEPS; do
    echo "== $step $(date +%T)"
    case $step in
    fp8)
        timeout 120 $PY -m pytest -q -p no:cacheprovider tests/test_fp8.py -k cuda --tb=long > "$O/fp8_tests.txt" 2>&1
        tail -n 3 "$O/fp8_tests.txt"
        ;;
    levers)
        timeout 300 $PY bench/flashvsr.py --sizes 768x1408,1080x1920 --frames 57 --backends flex \
            --levers none,compile,compile+dec,fp8+compile+dec --json "$O/levers.json" 2>&1 \
            | grep -v Warning > "$O/levers.txt"
        tail -n 12 "$O/levers.txt"
        ;;
    sdvsr)
        for v in std cl; do
            extra=()
            [ $v = cl ] && extra=(--channels-last-unet)
            PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True timeout 200 $PY bench/streamdiffvsr.py \
                --sizes 720p,1080p --profile "${extra[@]}" --json "$O/sdvsr_$v.json" > "$O/sdvsr_$v.txt" 2>&1
            tail -n 6 "$O/sdvsr_$v.txt"
        done
        ;;
    e2e)
        W=/tmp/w13
        [ -f $W/config.json ] || $PY scripts/make_random_model.py $W --size official-1.3b --device cuda > /dev/null
        $PY - <<'PYEOF'
import sys
sys.path.insert(0, "bench")
from pathlib import Path
from multigpu import write_video
Path("/tmp/e2e").mkdir(exist_ok=True)
write_video(Path("/tmp/e2e/long.mp4"), 1600, 192, 352, seed=99)
PYEOF
        for preset in medium veryfast; do
            timeout 200 $PY -m streamvsr.cli.main upscale /tmp/e2e/long.mp4 -o /tmp/e2e/out_$preset.mp4 \
                --model flashvsr --weights $W --encoder-opt preset=$preset --overwrite 2>&1 \
                | tr '\r' '\n' | grep wrote | tee -a "$O/e2e.txt"
        done
        ;;
    *) echo "unknown step $step" ;;
    esac
done
