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
promptkd_run b2n_test "$@"
