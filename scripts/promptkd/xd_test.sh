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
promptkd_run xd_test "$@"
