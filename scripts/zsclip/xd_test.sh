#!/usr/bin/env bash
# Zero-shot CLIP on the test split of DATASET, all classes (CLIP rows of paper Tables 2 and 9).
#
# Usage:  bash scripts/zsclip/xd_test.sh DATASET SEED [KEY VALUE ...]
# Environment: DATA (default ./data), CFG (default vit_b16), RUN_DIR, OUTPUT_ROOT, DRY_RUN=1, FORCE=1
#   (see scripts/common.sh).
# Output: OUTPUT_ROOT/evaluation/ZeroshotCLIP/CFG/DATASET/seedSEED
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
require_dataset_seed "$(basename "$0") DATASET SEED [KEY VALUE ...]" "$@"

TRAINER=ZeroshotCLIP
DATASET=$1
SEED=$2
CFG="${CFG:-${XD_CFG[zsclip]}}"

DATASET_CFG="$(dataset_config "$DATASET")"
TRAINER_CFG="$(trainer_config "$TRAINER" "$CFG")"
DIR="${RUN_DIR:-$OUTPUT_ROOT/evaluation/$TRAINER/$CFG/$(dataset_tag "$DATASET")/seed$SEED}"

run_job "$DIR" "$TRAINER" "$DATASET_CFG" "$TRAINER_CFG" "$SEED" "evaluate zero-shot CLIP; output in $DIR" \
    --eval-only \
    DATASET.SUBSAMPLE_CLASSES all \
    DATASET.EVAL_PROTOCOL subsample \
    "${@:3}"
