#!/usr/bin/env bash
# Call 3 of the session of 2026-11-27 (third): the w37 run of the encode-lr probe (docs/runs/2026-11-27/tc_ceiling.sh
# with WIDTHS="fast w37" TC_EXTRA=--encode-lr) continued alone for 6.3 minutes on the same warm machine (12 loader
# processes instead of 4), then the same gate check. Needs the probe's run folder (RUN_ROOT, default /tmp/ceil).
set -euo pipefail
export PYTHONPATH=${PYTHONPATH:-/tmp/site:$PWD/src}
R=${RUN_ROOT:-/tmp/ceil} OUT_DIR=${OUT_DIR:-${OUT:-/tmp/out}}
python3 -m streamvsr.recipes.tcdecoder --run-dir $R/tc_w37 --size docs/runs/2026-11-27/size_tc_w37.json \
    --ae $R/ae/export --data /tmp/data --clip-len 17 --crop 256 --batch-size 8 --degradation bi --image-prob 0 \
    --lpips-weight 0 --latent-noise 0 --workers 12 --lr 5e-4 --schedule constant --max-minutes 6.3 \
    --total-steps 1000000 --log-every 50 --ckpt-every 500 --train-encoder --encode-lr > $R/tc_w37_b.out 2>&1
python3 scripts/check_tcdecoder.py --ae $R/tc_w37/export_ae --tcdecoder $R/tc_w37/export --data /tmp/val9 --frames 9 \
    --device cuda --json $OUT_DIR/check_w37_b.json 2>&1 | tee $OUT_DIR/checks_b.txt
cp $R/tc_w37/log.jsonl $OUT_DIR/tc_w37_log_b.jsonl
