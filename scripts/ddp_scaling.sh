#!/usr/bin/env bash
# DDP scaling of one training stage: the same recipe on 1 GPU, then on NPROC GPUs (torchrun), each for MINUTES;
# prints samples/s per world size and the speed-up, and writes OUT_DIR/ddp_scaling.json.
#
#   scripts/ddp_scaling.sh [STAGE]     # STAGE: stage1 (default) | tcdecoder | stage0
#
# --fixed-batch reuses one batch per rank, so the numbers measure the training step (forward, backward,
# gradient all-reduce, optimizer) and not the data loaders, which scale with CPU cores separately.
# Environment: NPROC [2]  MINUTES [2]  AE_DIR [.data/carry/ae]  DATA_DIR [/tmp/data] (unpacked by
# scripts/pack_data.py --unpack)  PACK [.data/carry/data]  SIZE [fast]  BATCH [16]  PYTHON [python3]  OUT_DIR [$OUT]
set -euo pipefail

STAGE=${1:-stage1}
PY=${PYTHON:-python3}
NPROC=${NPROC:-2}
MINUTES=${MINUTES:-2}
AE_DIR=${AE_DIR:-.data/carry/ae}
D=${DATA_DIR:-/tmp/data}
PACK=${PACK:-.data/carry/data}
SIZE=${SIZE:-fast}
BATCH=${BATCH:-16}
OUT_DIR=${OUT_DIR:-${OUT:-/tmp/out}}
R=$(mktemp -d /tmp/ddp.XXXX)
mkdir -p "$OUT_DIR"
[ -d "$D/video" ] || $PY scripts/pack_data.py --unpack "$PACK" --out "$D"

case $STAGE in
stage1) args=(-m streamvsr.recipes.stage1_teacher --size "$SIZE" --ae "$AE_DIR" --clip-len 25 --crop 256) ;;
tcdecoder) args=(-m streamvsr.recipes.tcdecoder --size "$SIZE" --ae "$AE_DIR" --clip-len 17 --crop 256 --no-export) ;;
stage0) args=(-m streamvsr.recipes.stage0_autoencoder --size small --frames 9 --crop 256 --no-export) ;;
*)
    echo "unknown stage $STAGE" >&2
    exit 2
    ;;
esac
common=(--data "$D" --batch-size "$BATCH" --fixed-batch --workers 2 --max-minutes "$MINUTES" --log-every 10
    --total-steps 1000000)

for n in 1 "$NPROC"; do
    if [ "$n" = 1 ]; then
        $PY "${args[@]}" --run-dir "$R/w1" "${common[@]}" > "$R/w1.txt" 2>&1 || { tail -n 20 "$R/w1.txt"; exit 2; }
    else
        torchrun --standalone --nproc_per_node="$n" "${args[@]}" --run-dir "$R/w$n" "${common[@]}" \
            > "$R/w$n.txt" 2>&1 || { tail -n 20 "$R/w$n.txt"; exit 2; }
    fi
done

$PY - "$R" "$NPROC" "$STAGE" "$OUT_DIR/ddp_scaling.json" <<'EOF'
import json, pathlib, statistics, sys

root, nproc, stage, out = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
res = {"stage": stage}
for n in (1, nproc):
    recs = [json.loads(x) for x in (root / f"w{n}" / "log.jsonl").read_text().splitlines()]
    sps = [r["samples_per_s"] for r in recs if "samples_per_s" in r][2:]  # skip the warm-up records
    res[f"samples_per_s_{n}"] = statistics.median(sps) if sps else None
    print(f"world size {n}: {res[f'samples_per_s_{n}']} samples/s (median of {len(sps)} log records)")
if res[f"samples_per_s_{nproc}"] and res["samples_per_s_1"]:
    res["speedup"] = res[f"samples_per_s_{nproc}"] / res["samples_per_s_1"]
    print(f"speed-up on {nproc} GPUs: {res['speedup']:.2f}x")
pathlib.Path(out).write_text(json.dumps(res, indent=2) + "\n")
EOF
