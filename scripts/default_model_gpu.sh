#!/usr/bin/env bash
# The GPU slices that train the default model (size `fast`, or SIZE) on ONE GPU within one warm device lease,
# three calls of under 10 minutes each. Each phase leaves its run directories in RUN_ROOT (kept while the
# machine stays warm) and copies the small exports and the logs to OUT_DIR as one tarball, so a lost
# machine only loses the checkpoints (a later stage can start from the exports with --init).
#
#   scripts/default_model_gpu.sh 1   # unpack data; stage 0 (AE); then TCDecoder and stage 1 side by side
#   scripts/default_model_gpu.sh 2   # TCDecoder and stage 1 continue side by side; stage 2
#   scripts/default_model_gpu.sh 3   # stage 3 (DMD); export; GPU benchmark at 1920x1080
#   scripts/default_model_gpu.sh s3c # unpack data; stage 3 continued from folders on a fresh machine: G_DIR (the
#                                      generator with its TCDecoder), T_DIR (the stage-1 teacher; not needed with
#                                      S3_DMD_W=0: G_DIR=src/streamvsr/weights/flashvsr-fast continues the shipped
#                                      model), e.g. bf16 copies
#                                      of earlier exports (scripts/bf16_copy.py); S3_DMD_W [1], S3_MIX [MIX];
#                                      a second call with the same RUN_ROOT resumes; the export comes back in bf16
#   scripts/default_model_gpu.sh tc  # unpack data; TCDecoder only (TC_MIN minutes), on the autoencoder in AE_DIR
#   scripts/default_model_gpu.sh ae  # unpack data; stage 0 only (AE_MIN minutes); then `SKIP_AE=1 ... 1`
#                                      (AE_INIT=DIR: start from an earlier autoencoder export, e.g. .data/carry/ae)
#
# Stage 1 and the TCDecoder both need only the autoencoder, so they train at the same time on one GPU (the
# models are small: data loading, not the GPU, limits both). Minutes per stage come from the environment:
#   AE_MIN [3.5]  P1_MIN [3.5]  P2_MIN [4.5]  S2_MIN [3]  S3_MIN [6]
# and RUN_ROOT [/tmp/run], DATA_DIR [/tmp/data], PACK [.data/pack], LPIPS [.data/lpips_fp16.pth],
# MIX [bi:0.5,bd:0.1,real:0.4], OUT_DIR [$OUT], PYTHON [python3], WORKERS [14], EXTRA (flags for every stage:
# a CPU dry run passes `--device cpu --max-steps 2 --no-bf16`).
# TCDecoder: TC_MIX [bi:0.6,bd:0.1,real:0.3] and TC_LPIPS_W [0.5] (the paper's Eq. 3 weight is 2; the first pass
# with 2 and MIX made a decoder 1.6 dB below bicubic even on ground-truth latents: docs/training.md), TC_LR [3e-4],
# TC_NOISE [0.1] (the largest std of the noise added to its latents, `--latent-noise`).
# TC_JOINT=1: the TCDecoder trains the AE's encoder too (a conditional autoencoder, `tcdecoder --train-encoder`);
# stages 1-3 then use its tuned autoencoder ($R/tc/export_ae), so stage 1 runs after it, not beside it.
# Stage 3: S3_LR [2e-5], S3_DECODE [2] (latents decoded for the pixel losses), S3_MSE_W, S3_LPIPS_W, S3_DMD_W,
# S3_TEMP_W [0] (the frame-difference loss against flicker, `--temporal-weight`), S3_DE_W [0] (the local amount of
# fine detail against texture drawn over flat areas, `--detail-energy-weight`).
# S3_TRAIN_DEC=1: stage 3 fine-tunes the TCDecoder end to end too (`--train-decoder`, S3_DEC_LR [1e-4]).
# S3_NAME [s3]: phase 3's run folder in RUN_ROOT; another name exports to $R/<name>-export and packs phase3_<name>,
# so two phase-3 variants can share one GPU (WORKERS split between them); S3_BENCH [1]: the 1080p benchmark.
# IMAGE_PROB [0.2]: photo steps of the TCDecoder and stage 1 (0 where the pack holds no photos).
# SLIM=1: phases bring back the logs only, not the exports (sizes whose fp32 exports exceed what $OUT returns).
# VAL [.data/carry/val]: when that folder exists, scripts/check_tcdecoder.py checks the decoder on it after
# each TCDecoder slice (validation sequences: evaluation only, never training data).
set -euo pipefail

PHASE=${1:?usage: $0 1|2|3}
PY=${PYTHON:-python3}
R=${RUN_ROOT:-/tmp/run}
D=${DATA_DIR:-/tmp/data}
PACK=${PACK:-.data/pack}
LPIPS=${LPIPS:-.data/lpips_fp16.pth}
MIX=${MIX:-bi:0.5,bd:0.1,real:0.4}
OUT_DIR=${OUT_DIR:-${OUT:-/tmp/out}}
W=${WORKERS:-14}
EXTRA=${EXTRA:-}
SIZE=${SIZE:-fast}  # the model size of every stage from the TCDecoder on: a name of SIZES or a config.json path
AE_DIR=${AE_DIR:-$R/ae/export} TC_MIN=${TC_MIN:-6}
TC_MIX=${TC_MIX:-bi:0.6,bd:0.1,real:0.3} TC_LPIPS_W=${TC_LPIPS_W:-0.5} VAL=${VAL:-.data/carry/val}
TC_LR=${TC_LR:-3e-4} TC_NOISE=${TC_NOISE:-0.1}
S3_MSE_W=${S3_MSE_W:-1} S3_LPIPS_W=${S3_LPIPS_W:-2}  # stage 3 pixel-loss weights (the paper: 1 and 2)
S3_DMD_W=${S3_DMD_W:-1} S3_MIX=${S3_MIX:-$MIX} S3_LR=${S3_LR:-2e-5} S3_DECODE=${S3_DECODE:-2} S3_TEMP_W=${S3_TEMP_W:-0}
S3_DE_W=${S3_DE_W:-0}
TC_JOINT=${TC_JOINT:-0} S3_TRAIN_DEC=${S3_TRAIN_DEC:-0} S3_DEC_LR=${S3_DEC_LR:-1e-4}
IMG_P=${IMAGE_PROB:-0.2}  # photo steps of the TCDecoder and stage 1 (0 for a pack without photos)
S_AE=$R/ae/export  # the autoencoder whose latents stages 1-3 learn
TC_W=$((W * 2 / 5)) S1_W=$((W * 3 / 5))  # loader processes while the TCDecoder and stage 1 share the GPU
if [ "$TC_JOINT" = 1 ]; then  # one after the other: each gets all loaders
    S_AE=$R/tc/export_ae TC_W=$W S1_W=$W
fi
AE_MIN=${AE_MIN:-3.5} P1_MIN=${P1_MIN:-3.5} P2_MIN=${P2_MIN:-4.5} S2_MIN=${S2_MIN:-3} S3_MIN=${S3_MIN:-6}
mkdir -p "$R" "$OUT_DIR"

# shellcheck disable=SC2086  # EXTRA is a word list on purpose
ae() {
    $PY -m streamvsr.recipes.stage0_autoencoder --run-dir "$R/ae" --size small --data "$D" --loader ram \
        --frames 9 --crop 256 --batch-size 16 --workers "$W" --lpips-weights "$LPIPS" --schedule constant \
        --max-minutes "$AE_MIN" --total-steps 1000000 --log-every 50 --ckpt-every 1000 \
        ${AE_INIT:+--init "$AE_INIT"} $EXTRA
}
# shellcheck disable=SC2086
tc() {  # MINUTES
    $PY -m streamvsr.recipes.tcdecoder --run-dir "$R/tc" --size "$SIZE" --ae "$AE_DIR" --data "$D" \
        --clip-len 17 --crop 256 --batch-size 8 --latent-noise "$TC_NOISE" --degradation "$TC_MIX" --image-prob "$IMG_P" \
        --workers "$TC_W" --lpips-weights "$LPIPS" --lpips-weight "$TC_LPIPS_W" --lr "$TC_LR" --schedule constant \
        --max-minutes "$1" --total-steps 1000000 --log-every 50 --ckpt-every 500 \
        $([ "$TC_JOINT" = 1 ] && echo --train-encoder) $EXTRA
}
# shellcheck disable=SC2086
s1() {  # MINUTES
    $PY -m streamvsr.recipes.stage1_teacher --run-dir "$R/s1" --size "$SIZE" --ae "$S_AE" --data "$D" \
        --clip-len 25 --crop 256 --batch-size 16 --image-prob "$IMG_P" --image-batch-mult 4 --degradation "$MIX" \
        --workers "$S1_W" --lr 2e-4 --schedule constant --max-minutes "$1" --total-steps 1000000 \
        --log-every 50 --ckpt-every 500 $EXTRA
}
# shellcheck disable=SC2086
s3() {  # RUN_DIR --init G --teacher T --tcdecoder TC: stage 3 (DMD) for S3_MIN minutes, log in $R/logs/<run>.txt
    local run=$1 name
    name=$(basename "$1")
    shift
    $PY -m streamvsr.recipes.stage3_dmd --run-dir "$run" --size "$SIZE" "$@" --data "$D" --clip-len 25 --crop 256 \
        --batch-size 4 --degradation "$S3_MIX" --workers "$W" --lr "$S3_LR" --attn-backend dense \
        --lpips-weights "$LPIPS" --decode-latents "$S3_DECODE" --dmd-weight "$S3_DMD_W" --mse-weight "$S3_MSE_W" \
        --lpips-weight "$S3_LPIPS_W" --temporal-weight "$S3_TEMP_W" --detail-energy-weight "$S3_DE_W" \
        --schedule constant --max-minutes "$S3_MIN" --total-steps 1000000 --log-every 25 --ckpt-every 250 \
        $([ "$S3_TRAIN_DEC" = 1 ] && echo --train-decoder --decoder-lr "$S3_DEC_LR") $EXTRA > "$R/logs/$name.txt" 2>&1 ||
        tail -n 30 "$R/logs/$name.txt"
    tail -n 3 "$R/logs/$name.txt"
}
# shellcheck disable=SC2086
s3_export() {  # RUN_DIR TCDECODER OUT: the generator's EMA weights + the (tuned) TCDecoder -> one FlashVSR folder
    $PY -m streamvsr.recipes.stage3_dmd --run-dir "$1" --size "$SIZE" --tcdecoder "$2" --export-only --export "$3" \
        $([ "$S3_TRAIN_DEC" = 1 ] && echo --train-decoder) $EXTRA > "$R/logs/$(basename "$1")x.txt" 2>&1 ||
        tail -n 20 "$R/logs/$(basename "$1")x.txt"
}
tc_gate() {  # the decoder against bicubic on the validation frames, with ground-truth latents
    [ -d "$VAL" ] || return 0
    local ae=$AE_DIR
    [ "$TC_JOINT" = 1 ] && ae=$R/tc/export_ae
    $PY scripts/check_tcdecoder.py --ae "$ae" --tcdecoder "$R/tc" --data "$VAL" --frames 9 \
        --json "$R/logs/tc_gate.json" | tail -n 1
}
tc_beside_s1() {  # MINUTES TC_LOG S1_LOG: the TCDecoder and stage 1 side by side on the one GPU, then the gate
    if [ "$TC_JOINT" = 1 ]; then  # stage 1 needs the tuned encoder: one after the other, half the time each
        local half
        half=$(awk "BEGIN {print $1 / 2}")
        tc "$half" > "$R/logs/$2.txt" 2>&1 || tail -n 30 "$R/logs/$2.txt"
        s1 "$half" > "$R/logs/$3.txt" 2>&1 || tail -n 30 "$R/logs/$3.txt"
        tail -n 3 "$R/logs/$2.txt" "$R/logs/$3.txt"
        tc_gate
        return
    fi
    tc "$1" > "$R/logs/$2.txt" 2>&1 &
    local tcpid=$!
    s1 "$1" > "$R/logs/$3.txt" 2>&1 || tail -n 30 "$R/logs/$3.txt"
    wait $tcpid || tail -n 30 "$R/logs/$2.txt"
    tail -n 3 "$R/logs/$2.txt" "$R/logs/$3.txt"
    tc_gate
}
pack_out() {  # NAME PATH...: those paths of RUN_ROOT + the logs -> OUT_DIR/NAME.tar.gz.00, .01, ... (15 MiB parts)
    local name=$1 items=()
    shift
    [ "${SLIM:-0}" = 1 ] && set --  # SLIM=1: the logs alone (the exports stay on the warm machine)
    for p in "$@" ae/log.jsonl tc/log.jsonl s1/log.jsonl s2/log.jsonl s3/log.jsonl logs; do
        [ -e "$R/$p" ] && items+=("$p")
    done
    tar -czf - -C "$R" "${items[@]}" | split -b 15M -d - "$OUT_DIR/$name.tar.gz."
    ls -la "$OUT_DIR"
}
mkdir -p "$R/logs"

case $PHASE in
1)
    [ -d "$D/video" ] || $PY scripts/pack_data.py --unpack "$PACK" --out "$D"
    if [ "${SKIP_AE:-0}" != 1 ]; then
        ae > "$R/logs/ae.txt" 2>&1 || { tail -n 30 "$R/logs/ae.txt"; exit 2; }
        tail -n 3 "$R/logs/ae.txt"
    fi
    tc_beside_s1 "$P1_MIN" tc1 s1a
    pack_out phase1 ae/export tc/export $([ "$TC_JOINT" = 1 ] && echo tc/export_ae)
    ;;
2)
    tc_beside_s1 "$P2_MIN" tc2 s1b
    # a stage-1 export with the TCDecoder: a fallback model and a check of stage 1 alone
    $PY -m streamvsr.recipes.stage1_teacher --run-dir "$R/s1" --size "$SIZE" --tcdecoder "$R/tc" --export-only \
        --export "$R/s1/export" $EXTRA > "$R/logs/s1x.txt" 2>&1 || tail -n 20 "$R/logs/s1x.txt"
    # shellcheck disable=SC2086
    $PY -m streamvsr.recipes.stage2_sparse_causal --run-dir "$R/s2" --size "$SIZE" --init "$R/s1" --ae "$S_AE" \
        --data "$D" --clip-len 25 --crop 256 --batch-size 8 --degradation "$MIX" --workers "$W" --lr 1e-4 --attn-backend dense \
        --schedule constant --max-minutes "$S2_MIN" --total-steps 1000000 --log-every 50 --ckpt-every 500 \
        --tcdecoder "$R/tc" --export "$R/s2/export" $EXTRA > "$R/logs/s2.txt" 2>&1 || tail -n 30 "$R/logs/s2.txt"
    tail -n 3 "$R/logs/s2.txt"
    pack_out phase2 tc/export s2/export  # s1/export stays on the machine: the fp32 exports of both exceed what $OUT returns
    ;;
3)
    S3N=${S3_NAME:-s3} EXP=flashvsr-fast
    [ "$S3N" = s3 ] || EXP=$S3N-export
    s3 "$R/$S3N" --init "$R/s2" --teacher "$R/s1" --tcdecoder "$R/tc"
    s3_export "$R/$S3N" "$R/tc" "$R/$EXP"
    rm -rf "$R/$EXP-bf16"  # the shipping form, and what $OUT can return for larger sizes
    $PY scripts/bf16_copy.py "$R/$EXP" "$R/$EXP-bf16"
    mkdir -p "$R/bench"
    if [ -z "$EXTRA" ] && [ "${S3_BENCH:-1}" = 1 ]; then
        for m in $EXP s2/export s1/export; do
            [ -f "$R/$m/config.json" ] || continue
            $PY -m streamvsr.cli.main bench --model flashvsr --weights "$R/$m" --size 480x270 --frames 96 \
                --device cuda --dtype bfloat16 --json "$R/bench/${m//\//_}_1080p.json" 2>&1 | tail -4
        done
    fi
    if [ "$S3N" = s3 ]; then pack_out phase3 "$EXP-bf16" bench; else pack_out "phase3_$S3N" "$EXP-bf16" "$S3N/log.jsonl"; fi
    ;;
ae)
    [ -d "$D/video" ] || $PY scripts/pack_data.py --unpack "$PACK" --out "$D"
    ae > "$R/logs/ae.txt" 2>&1 || { tail -n 30 "$R/logs/ae.txt"; exit 2; }
    tail -n 3 "$R/logs/ae.txt"
    pack_out phase_ae ae/export
    ;;
s3c)
    [ -d "$D/video" ] || $PY scripts/pack_data.py --unpack "$PACK" --out "$D"
    # T_DIR (the teacher) only matters with DMD: without it (S3_DMD_W=0) the shipped model alone can continue
    s3 "$R/s3c" --init "${G_DIR:?G_DIR: the generator folder}" ${T_DIR:+--teacher "$T_DIR"} --tcdecoder "$G_DIR"
    s3_export "$R/s3c" "$G_DIR" "$R/flashvsr-fast"
    rm -rf "$R/flashvsr-fast-bf16"  # bf16 (the shipping form): two variants' fp32 exports exceed what $OUT returns
    $PY scripts/bf16_copy.py "$R/flashvsr-fast" "$R/flashvsr-fast-bf16"
    pack_out phase_s3c flashvsr-fast-bf16 s3c/log.jsonl
    ;;
tc)
    [ -d "$D/video" ] || $PY scripts/pack_data.py --unpack "$PACK" --out "$D"
    tc "$TC_MIN" > "$R/logs/tc.txt" 2>&1 || tail -n 30 "$R/logs/tc.txt"
    tail -n 3 "$R/logs/tc.txt"
    tc_gate
    pack_out phase_tc tc/export
    ;;
*)
    echo "unknown phase $PHASE" >&2
    exit 2
    ;;
esac
