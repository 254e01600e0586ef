#!/usr/bin/env bash
# PromptKD student, base-to-novel evaluation only (the reference shipped no test script): loads a trained
# student (default: the run folder of base2new_train.sh; any student folder with MODEL_DIR=...) and
# evaluates base and novel test classes (results.json: base_acc, novel_acc, hm). Uses the stored class
# vectors: the teacher is not run.
#
# Usage:  bash scripts/promptkd/base2new_test.sh DATASET SEED [KEY VALUE ...]
# Environment: DATA (default ./data), MODEL_DIR (student run folder), LOADEP (checkpoint epoch, default the
#   config's MAX_EPOCH), TEACHER_CKPT / CLASS_VECTORS (as in base2new_train.sh), CFG, RUN_DIR,
#   OUTPUT_ROOT, DRY_RUN=1, FORCE=1 (see scripts/common.sh).
# Output: OUTPUT_ROOT/base2new/test_base2novel/DATASET/shots_0/PromptKD/CFG/seed_SEED
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
require_dataset_seed "$(basename "$0") DATASET SEED [KEY VALUE ...]" "$@"

TRAINER=PromptKD
DATASET=$1
SEED=$2
CFG="${CFG:-${B2N_CFG[promptkd]}}"
SHOTS=0

DATASET_CFG="$(dataset_config "$DATASET")"
TRAINER_CFG="$(trainer_config "$TRAINER" "$CFG")"
LOADEP="${LOADEP:-$(cfg_max_epoch "$TRAINER_CFG")}"
MODEL_DIR="${MODEL_DIR:-$(b2n_dir train_base "$DATASET" "$SHOTS" "$TRAINER" "$CFG" "seed_$SEED")}"
DIR="${RUN_DIR:-$(b2n_dir test_base2novel "$DATASET" "$SHOTS" "$TRAINER" "$CFG" "seed_$SEED")}"
collect_teacher_opts

run_job "$DIR" "$TRAINER" "$DATASET_CFG" "$TRAINER_CFG" "$SEED" \
    "evaluate $MODEL_DIR (epoch $LOADEP) on base and novel classes; output in $DIR" \
    --model-dir "$MODEL_DIR" \
    --load-epoch "$LOADEP" \
    --eval-only \
    "${TEACHER_OPTS[@]}" \
    "${@:3}"
