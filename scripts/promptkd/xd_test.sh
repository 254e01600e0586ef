#!/usr/bin/env bash
# PromptKD student, cross-dataset / domain generalisation evaluation only: loads the student distilled on
# DATASET by xd_train.sh (or MODEL_DIR) and evaluates it on DATASET's test split (results.json: accuracy).
#
# Usage:  bash scripts/promptkd/xd_test.sh DATASET SEED [KEY VALUE ...]
# Environment: DATA (default ./data), MODEL_DIR (student run folder), LOADEP (default the config's
#   MAX_EPOCH), TEACHER_CKPT / CLASS_VECTORS, CFG, RUN_DIR, OUTPUT_ROOT, DRY_RUN=1, FORCE=1
#   (see scripts/common.sh).
# Output: OUTPUT_ROOT/evaluation/PromptKD/CFG_0shots/DATASET/seedSEED
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
require_dataset_seed "$(basename "$0") DATASET SEED [KEY VALUE ...]" "$@"

TRAINER=PromptKD
DATASET=$1
SEED=$2
CFG="${CFG:-${XD_CFG[promptkd]}}"
SHOTS=0

DATASET_CFG="$(dataset_config "$DATASET")"
TRAINER_CFG="$(trainer_config "$TRAINER" "$CFG")"
LOADEP="${LOADEP:-$(cfg_max_epoch "$TRAINER_CFG")}"
MODEL_DIR="${MODEL_DIR:-$(xd_dir "$DATASET" "$TRAINER" "$CFG" "$SHOTS" "$SEED")}"
DIR="${RUN_DIR:-$(xd_eval_dir "$TRAINER" "$CFG" "$SHOTS" "$DATASET" "$SEED")}"
collect_teacher_opts

run_job "$DIR" "$TRAINER" "$DATASET_CFG" "$TRAINER_CFG" "$SEED" \
    "evaluate $MODEL_DIR (epoch $LOADEP) on $DATASET; output in $DIR" \
    --model-dir "$MODEL_DIR" \
    --load-epoch "$LOADEP" \
    --eval-only \
    "${TEACHER_OPTS[@]}" \
    "${@:3}"
