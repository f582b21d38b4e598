#!/usr/bin/env bash
# Two stage-3 continuations side by side on one GPU (an A/B of their settings), then a quick GPU evaluation of both.
# The model of size `fast` leaves most of an H100/H200 idle, so two runs cost little more wall time than one.
#
#   scripts/s3c_pair.sh a "S3_LR=5e-5 S3_DMD_W=0.1 S3_MSE_W=32" b "S3_LR=5e-5 S3_DMD_W=0.25 S3_MSE_W=16"
#
# Each NAME runs `scripts/default_model_gpu.sh s3c` with its settings (environment assignments), half the loaders,
# RUN_ROOT=$ROOT/NAME and OUT_DIR=$OUT/NAME. A run directory that exists is resumed (copy one to branch it).
# The environment of s3c applies to both (PACK, LPIPS, G_DIR, T_DIR, S3_MIN, S3_MIX, ...).
# EVAL_DATA [unset]: sequences for `streamvsr eval` (BI x4; psnr_y, ssim_y, tof) -> $OUT/eval_<a>_<b>.json.
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: $0 NAME_A SETTINGS_A NAME_B SETTINGS_B" >&2; exit 2; }
PY=${PYTHON:-python3}
ROOT=${ROOT:-/tmp/ab}
OUT_DIR=${OUT_DIR:-${OUT:-/tmp/out}}
D=${DATA_DIR:-/tmp/data}
W=$((${WORKERS:-14} / 2))
[ -d "$D/video" ] || $PY scripts/pack_data.py --unpack "${PACK:-.data/pack}" --out "$D"  # once, before both start

run() {  # NAME SETTINGS
    mkdir -p "$ROOT/$1" "$OUT_DIR/$1"
    # shellcheck disable=SC2086  # SETTINGS is a list of assignments on purpose
    env $2 RUN_ROOT="$ROOT/$1" OUT_DIR="$OUT_DIR/$1" DATA_DIR="$D" WORKERS="$W" \
        scripts/default_model_gpu.sh s3c > "$OUT_DIR/$1/s3c_pair.txt" 2>&1
}
run "$1" "$2" &
pid=$!
run "$3" "$4" || echo "$3 failed: see $OUT_DIR/$3/s3c_pair.txt"
wait $pid || echo "$1 failed: see $OUT_DIR/$1/s3c_pair.txt"
tail -n 2 "$OUT_DIR/$1/s3c_pair.txt" "$OUT_DIR/$3/s3c_pair.txt"
if [ -n "${EVAL_DATA:-}" ]; then  # the bf16 exports (the shipping form), labelled by NAME
    mkdir -p "$ROOT/eval"
    ln -sfn "$ROOT/$1/flashvsr-fast-bf16" "$ROOT/eval/$1"
    ln -sfn "$ROOT/$3/flashvsr-fast-bf16" "$ROOT/eval/$3"
    $PY -m streamvsr.cli.main eval --model "flashvsr=$ROOT/eval/$1" --model "flashvsr=$ROOT/eval/$3" \
        --data "$EVAL_DATA" --max-frames 10 --metrics psnr_y,ssim_y,tof --device cuda --dtype float32 \
        --json "$OUT_DIR/eval_$1_$3.json" 2>&1 | tail -n 6
fi
