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
# FSDP [0]: 1 also runs the NPROC-GPU case with --parallel fsdp (stages 1-3, tcdecoder).
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
common=(--data "$D" --batch-size "$BATCH" --fixed-batch --workers 2 --max-minutes "$MINUTES" --log-every 4
    --total-steps 1000000)

runs=("1" "$NPROC")
[ "${FSDP:-0}" = 1 ] && runs+=("${NPROC}fsdp")
for tag in "${runs[@]}"; do
    n=${tag%fsdp}
    extra=()
    [ "$tag" != "$n" ] && extra=(--parallel fsdp)
    # torchrun for 1 GPU too: the same launcher and thread settings (OMP_NUM_THREADS) on both sides
    $PY -m torch.distributed.run --standalone --nproc_per_node="$n" "${args[@]}" --run-dir "$R/w$tag" "${common[@]}" \
        "${extra[@]}" > "$R/w$tag.txt" 2>&1 || { tail -n 20 "$R/w$tag.txt"; exit 2; }
done

$PY - "$R" "$STAGE" "$OUT_DIR/ddp_scaling.json" "${runs[@]}" <<'EOF'
import json, pathlib, statistics, sys

root, stage, out, tags = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
res = {"stage": stage}
for tag in tags:
    recs = [json.loads(x) for x in (root / f"w{tag}" / "log.jsonl").read_text().splitlines()]
    sps = [r["samples_per_s"] for r in recs if "samples_per_s" in r][2:]  # skip the warm-up records
    mem = [r["gpu_mem_gib"] for r in recs if r.get("gpu_mem_gib") is not None]
    res[f"samples_per_s_{tag}"] = statistics.median(sps) if sps else None
    res[f"gpu_mem_gib_{tag}"] = max(mem) if mem else None
    print(f"{tag}: {res[f'samples_per_s_{tag}']} samples/s (median of {len(sps)} log records)")
for tag in tags[1:]:
    if res[f"samples_per_s_{tag}"] and res["samples_per_s_1"]:
        res[f"speedup_{tag}"] = res[f"samples_per_s_{tag}"] / res["samples_per_s_1"]
        print(f"speed-up {tag} vs 1 GPU: {res[f'speedup_{tag}']:.2f}x")
pathlib.Path(out).write_text(json.dumps(res, indent=2) + "\n")
EOF
