#!/usr/bin/env bash
# Zero-shot CLIP on the full test split of DATASET (reference script: same arguments and output folder).
#
# Usage:  bash scripts/zsclip/zeroshot.sh DATASET CFG [KEY VALUE ...]
#   CFG  a config of configs/trainers/ZeroshotCLIP/: rn50 rn101 vit_b32 vit_b16 vit_l14
# Environment: DATA (default ./data), OUTPUT_ROOT, DRY_RUN=1, FORCE=1 (see scripts/common.sh).
# Output: OUTPUT_ROOT/ZeroshotCLIP/CFG/DATASET
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
[[ $# -ge 2 ]] || die "missing arguments. Usage: $(basename "$0") DATASET CFG [KEY VALUE ...]"

TRAINER=ZeroshotCLIP
DATASET=$1
CFG=$2

DATASET_CFG="$(dataset_config "$DATASET")"
TRAINER_CFG="$(trainer_config "$TRAINER" "$CFG")"
DIR="${RUN_DIR:-$OUTPUT_ROOT/$TRAINER/$CFG/$(dataset_tag "$DATASET")}"

run_job "$DIR" "$TRAINER" "$DATASET_CFG" "$TRAINER_CFG" "" "evaluate zero-shot CLIP; output in $DIR" \
    --eval-only \
    DATASET.SUBSAMPLE_CLASSES all \
    DATASET.EVAL_PROTOCOL subsample \
    "${@:3}"
