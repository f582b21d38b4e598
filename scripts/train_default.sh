#!/usr/bin/env bash
# Train the default FlashVSR model from scratch, stage by stage, in resumable slices:
#   stage 0 (autoencoder) -> TCDecoder -> stage 1 (teacher) -> stage 2 (sparse-causal) -> stage 3 (DMD) -> export
#
#   scripts/train_default.sh RUN_ROOT DATA_DIR
#
# DATA_DIR holds video/ (clip folders of frames or video files) and images/ (photos), like
# ../shared/data/train. Each call trains ONE slice of the first unfinished stage (at most
# MAX_MINUTES minutes and <STAGE>_SAMPLES samples) and exits, so one call stays under 10 minutes on one H100;
# call it again to continue: every stage resumes from its latest checkpoint and a stage counts as finished when
# its log says it reached <STAGE>_STEPS steps. When stage 3 is finished the next call writes the inference
# folder EXPORT_DIR (default RUN_ROOT/flashvsr-SIZE), loadable by the FlashVSR weights loader / upscaler.
# ALL_STAGES=1 instead runs slice after slice until everything is finished (for long machine time).
#
# Environment (defaults in brackets):
#   PYTHON [python]  NPROC [1: plain python; >1: torchrun --standalone --nproc_per_node=NPROC]
#   SIZE [fast]  AE_SIZE [small]  MAX_MINUTES [8]  WORKERS [8]  DEGRADATION [mix]  ALL_STAGES [0: one slice]
#   AE_SAMPLES [200000]  AE_STEPS [20000]     per-call sample slice / whole-stage step count, per stage
#   TC_SAMPLES [200000]  TC_STEPS [20000]
#   S1_SAMPLES [200000]  S1_STEPS [60000]
#   S2_SAMPLES [100000]  S2_STEPS [20000]
#   S3_SAMPLES [50000]   S3_STEPS [10000]
#   EXTRA_AE / EXTRA_TC / EXTRA_S1 / EXTRA_S2 / EXTRA_S3: extra flags for one stage
set -euo pipefail

RUN_ROOT=${1:?usage: $0 RUN_ROOT DATA_DIR}
DATA=${2:?usage: $0 RUN_ROOT DATA_DIR}
PY=${PYTHON:-python}
NPROC=${NPROC:-1}
SIZE=${SIZE:-fast}
AE_SIZE=${AE_SIZE:-small}
MAX_MINUTES=${MAX_MINUTES:-8}
WORKERS=${WORKERS:-8}
DEGRADATION=${DEGRADATION:-mix}
ALL_STAGES=${ALL_STAGES:-0}
EXPORT_DIR=${EXPORT_DIR:-$RUN_ROOT/flashvsr-$(basename "$SIZE" .json)}

AE_SAMPLES=${AE_SAMPLES:-200000}; AE_STEPS=${AE_STEPS:-20000}
TC_SAMPLES=${TC_SAMPLES:-200000}; TC_STEPS=${TC_STEPS:-20000}
S1_SAMPLES=${S1_SAMPLES:-200000}; S1_STEPS=${S1_STEPS:-60000}
S2_SAMPLES=${S2_SAMPLES:-100000}; S2_STEPS=${S2_STEPS:-20000}
S3_SAMPLES=${S3_SAMPLES:-50000};  S3_STEPS=${S3_STEPS:-10000}

AE=$RUN_ROOT/ae TC=$RUN_ROOT/tc S1=$RUN_ROOT/s1 S2=$RUN_ROOT/s2 S3=$RUN_ROOT/s3
mkdir -p "$RUN_ROOT"

launch() {  # module args...
    if [ "$NPROC" -gt 1 ]; then
        torchrun --standalone --nproc_per_node="$NPROC" -m "$@"
    else
        "$PY" -m "$@"
    fi
}

finished() {  # RUN_DIR: true when the run's log ends a slice with stopped == total_steps
    "$PY" - "$1" <<'EOF'
import json, pathlib, sys

log = pathlib.Path(sys.argv[1]) / "log.jsonl"
ends = []
if log.is_file():
    for line in log.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rec.get("event") == "end":
            ends.append(rec)
sys.exit(0 if ends and ends[-1].get("stopped") == "total_steps" else 1)
EOF
}

# Returns 0 at once when the stage was finished before; else trains one slice and returns 1 (work done).
stage() {  # NAME RUN_DIR module args...
    local name=$1 dir=$2
    shift 2
    if finished "$dir"; then
        echo "== $name: finished ($dir)"
        return 0
    fi
    echo "== $name: training a slice (<= $MAX_MINUTES min) in $dir"
    launch "$@" --max-minutes "$MAX_MINUTES" || { echo "== $name: failed" >&2; exit 2; }
    if finished "$dir"; then
        echo "== $name: finished"
    fi
    return 1
}

run_all() {
    # shellcheck disable=SC2086  # EXTRA_* are word lists on purpose
    stage "stage 0 (autoencoder)" "$AE" streamvsr.recipes.stage0_autoencoder --run-dir "$AE" --size "$AE_SIZE" \
        --data "$DATA" --frames 9 --crop 256 --batch-size 8 --workers "$WORKERS" \
        --max-samples "$AE_SAMPLES" --total-steps "$AE_STEPS" ${EXTRA_AE:-} || return 1
    # shellcheck disable=SC2086
    stage "TCDecoder" "$TC" streamvsr.recipes.tcdecoder --run-dir "$TC" --size "$SIZE" --ae "$AE/export" \
        --data "$DATA" --clip-len 17 --crop 256 --batch-size 8 --latent-noise 0.1 --degradation "$DEGRADATION" \
        --workers "$WORKERS" --max-samples "$TC_SAMPLES" --total-steps "$TC_STEPS" ${EXTRA_TC:-} || return 1
    # shellcheck disable=SC2086
    stage "stage 1 (teacher)" "$S1" streamvsr.recipes.stage1_teacher --run-dir "$S1" --size "$SIZE" \
        --ae "$AE/export" --data "$DATA" --clip-len 25 --crop 256 --batch-size 8 --image-prob 0.2 \
        --degradation "$DEGRADATION" --workers "$WORKERS" --grad-checkpointing \
        --max-samples "$S1_SAMPLES" --total-steps "$S1_STEPS" ${EXTRA_S1:-} || return 1
    # shellcheck disable=SC2086
    stage "stage 2 (sparse causal)" "$S2" streamvsr.recipes.stage2_sparse_causal --run-dir "$S2" --size "$SIZE" \
        --init "$S1" --ae "$AE/export" --data "$DATA" --clip-len 41 --crop 256 --batch-size 4 \
        --degradation "$DEGRADATION" --workers "$WORKERS" --grad-checkpointing \
        --max-samples "$S2_SAMPLES" --total-steps "$S2_STEPS" ${EXTRA_S2:-} || return 1
    # shellcheck disable=SC2086
    stage "stage 3 (DMD)" "$S3" streamvsr.recipes.stage3_dmd --run-dir "$S3" --size "$SIZE" \
        --init "$S2" --teacher "$S1" --tcdecoder "$TC" --data "$DATA" --clip-len 41 --crop 256 --batch-size 2 \
        --degradation "$DEGRADATION" --workers "$WORKERS" --grad-checkpointing \
        --max-samples "$S3_SAMPLES" --total-steps "$S3_STEPS" ${EXTRA_S3:-} || return 1
    if [ ! -f "$EXPORT_DIR/config.json" ] || [ "$S3/latest" -nt "$EXPORT_DIR/config.json" ]; then
        echo "== export: $EXPORT_DIR"
        "$PY" -m streamvsr.recipes.stage3_dmd --run-dir "$S3" --size "$SIZE" --tcdecoder "$TC" \
            --export-only --export "$EXPORT_DIR" || { echo "== export failed" >&2; exit 2; }
    fi
    echo "== all stages finished; inference weights in $EXPORT_DIR"
}

if [ "$ALL_STAGES" = "1" ]; then
    until run_all; do :; done
else
    run_all || echo "== slice done; run this script again to continue"
fi
