#!/usr/bin/env bash
# Zero-shot CLIP in the base-to-novel protocol (CLIP row of paper Table 1; the reference had no script
# for it): evaluates base and novel test classes (results.json: base_acc, novel_acc, hm). Zero-shot CLIP
# is deterministic, one seed is enough.
#
# Usage:  bash scripts/zsclip/base2new_test.sh DATASET SEED [KEY VALUE ...]
# Environment: DATA (default ./data), CFG (default vit_b16), RUN_DIR, OUTPUT_ROOT, DRY_RUN=1, FORCE=1
#   (see scripts/common.sh).
# Output: OUTPUT_ROOT/base2new/zeroshot/DATASET/ZeroshotCLIP/CFG/seedSEED
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
require_dataset_seed "$(basename "$0") DATASET SEED [KEY VALUE ...]" "$@"

TRAINER=ZeroshotCLIP
DATASET=$1
SEED=$2
CFG="${CFG:-${B2N_CFG[zsclip]}}"

DATASET_CFG="$(dataset_config "$DATASET")"
TRAINER_CFG="$(trainer_config "$TRAINER" "$CFG")"
DIR="${RUN_DIR:-$OUTPUT_ROOT/base2new/zeroshot/$(dataset_tag "$DATASET")/$TRAINER/$CFG/seed$SEED}"

run_job "$DIR" "$TRAINER" "$DATASET_CFG" "$TRAINER_CFG" "$SEED" \
    "evaluate zero-shot CLIP on base and novel classes; output in $DIR" \
    --eval-only \
    DATASET.SUBSAMPLE_CLASSES base \
    DATASET.EVAL_PROTOCOL base2novel \
    "${@:3}"
