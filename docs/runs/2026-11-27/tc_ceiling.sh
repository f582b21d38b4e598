#!/usr/bin/env bash
# The TCDecoder's ceiling by width (issue 6): how close to the ground truth can a decoder of a given size get
# when its latents are those of the ground truth? A conditional autoencoder per width (the stage-0 encoder
# trained together with the TCDecoder, `tcdecoder --train-encoder`), MSE only, BI inputs, from one stage-0
# autoencoder trained first. The three widths train side by side on one GPU. EXTRA: flags for every run (a CPU
# dry run: EXTRA="--device cpu --max-steps 2 --no-bf16 --crop 64 --batch-size 1" AE_EXTRA="--device cpu --max-steps 2
# --no-bf16 --crop 64 --batch-size 2" CHECK_DEVICE=cpu). Then each width's gate check (scripts/check_tcdecoder.py, its own
# encoder's latents of the ground truth) on VAL_DIR (the first 9 frames of each ../shared/data/val/davis2016
# sequence); the logs and the checks' JSON go to OUT_DIR (the exports stay in RUN_ROOT: they are too large to bring
# back). WIDTHS [fast w37 w74]: the decoders to train; TC_EXTRA: more flags for them, e.g. `--encode-lr` (the probe
# planned in docs/training.md, second session of 2026-11-27: the encoder sees the bicubic LR, not the HR clip, so
# the check's tc_lr_latents column is a plain super-resolution network of the model's shape).
set -euo pipefail
export PYTHONPATH=${PYTHONPATH:-/tmp/site:$PWD/src}
R=${RUN_ROOT:-/tmp/ceil} D=${DATA_DIR:-/tmp/data} PY=${PYTHON:-python3} OUT_DIR=${OUT_DIR:-${OUT:-/tmp/out}}
AE_MIN=${AE_MIN:-2.3} TC_MIN=${TC_MIN:-4.3} VAL=${VAL_DIR:-/tmp/val9} EXTRA=${EXTRA:-} AE_EXTRA=${AE_EXTRA:-}
WIDTHS=${WIDTHS:-fast w37 w74} TC_EXTRA=${TC_EXTRA:-}
mkdir -p "$R" "$OUT_DIR"
[ -d "$D/video" ] || $PY scripts/pack_data.py --unpack .data/pack --out "$D"
# shellcheck disable=SC2086
$PY -m streamvsr.recipes.stage0_autoencoder --run-dir "$R/ae" --size small --data "$D" --loader ram --frames 9 \
    --crop 256 --batch-size 16 --workers 12 --schedule constant --max-minutes "$AE_MIN" --total-steps 1000000 \
    --log-every 50 --ckpt-every 1000 $AE_EXTRA > "$R/ae.out" 2>&1
for s in $WIDTHS; do
    size=$s
    [ "$s" = fast ] || size=docs/runs/2026-11-27/size_tc_$s.json
    # shellcheck disable=SC2086
    $PY -m streamvsr.recipes.tcdecoder --run-dir "$R/tc_$s" --size "$size" --ae "$R/ae/export" --data "$D" \
        --clip-len 17 --crop 256 --batch-size 8 --degradation bi --image-prob 0 --lpips-weight 0 --latent-noise 0 \
        --workers 4 --lr 5e-4 --schedule constant --max-minutes "$TC_MIN" --total-steps 1000000 --log-every 50 \
        --ckpt-every 500 --train-encoder $TC_EXTRA $EXTRA > "$R/tc_$s.out" 2>&1 &
done
wait
tail -n 2 "$R"/*.out
for s in $WIDTHS; do
    echo "== $s"
    $PY scripts/check_tcdecoder.py --ae "$R/tc_$s/export_ae" --tcdecoder "$R/tc_$s/export" --data "$VAL" --frames 9 \
        --device "${CHECK_DEVICE:-cuda}" --json "$OUT_DIR/check_$s.json"
done 2>&1 | tee "$OUT_DIR/checks.txt"
cp "$R/ae/log.jsonl" "$OUT_DIR/ae_log.jsonl"
for s in $WIDTHS; do cp "$R/tc_$s/log.jsonl" "$OUT_DIR/tc_${s}_log.jsonl"; done
