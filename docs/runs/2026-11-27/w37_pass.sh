#!/usr/bin/env bash
# A new default-model candidate through every stage in one lease (issue 6): the TCDecoder of width 64/48/32/24
# (5.6 times the MACs per pixel of `fast`; its ceiling with ground-truth latents was bicubic + 3.05 dB in this
# session's tc_ceiling.sh, against + 1.63 for `fast`) and a DiT of dim 384 (size_w37_d384.json; 2.0 to 2.3 FPS at
# 1280x720 on 2 CPU cores with random weights). Runs scripts/default_model_gpu.sh PHASE (1, 2 or 3) with:
# the conditional autoencoder (TC_JOINT=1, MSE only), more BI in every stage, and stage 3 as r2's last slices
# (no DMD, no LPIPS, MSE 32, frame difference 32, the decoder tuned). Phases 1 and 2 bring back logs only.
set -euo pipefail
export SIZE=docs/runs/2026-11-27/size_w37_d384.json TC_JOINT=1 TC_LPIPS_W=0 VAL=${VAL:-/tmp/val9}
export MIX=bi:0.7,bd:0.1,real:0.2 TC_MIX=bi:0.7,bd:0.1,real:0.2 S3_MIX=bi:0.7,bd:0.1,real:0.2
export AE_MIN=${AE_MIN:-2.5} P1_MIN=${P1_MIN:-4.5} P2_MIN=${P2_MIN:-3.5} S2_MIN=${S2_MIN:-2.5} S3_MIN=${S3_MIN:-6.5}
# stage 3 as run on 2026-11-27; the next pass starts it with DMD (S3_DMD_W=1 S3_MSE_W=4, as r2's first slice)
export IMAGE_PROB=0 S3_DMD_W=${S3_DMD_W:-0} S3_MSE_W=${S3_MSE_W:-32} S3_LPIPS_W=0 S3_TEMP_W=${S3_TEMP_W:-32}
export S3_LR=${S3_LR:-1e-4} S3_TRAIN_DEC=1 S3_DEC_LR=${S3_DEC_LR:-2e-4}
[ "$1" = 3 ] || export SLIM=1
exec bash scripts/default_model_gpu.sh "$1"
