#!/usr/bin/env bash
# MaPLe, cross-dataset / domain generalisation evaluation: --eval-only of the SOURCE (default imagenet)
# model from xd_train.sh on the test split of DATASET (a Table 2 target or an ImageNet variant).
# Usage:  bash scripts/maple/xd_test.sh DATASET SEED [KEY VALUE ...]
# Config: configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx_cross_datasets.yaml
# Output: OUTPUT_ROOT/evaluation/MaPLe/CFG_SHOTSshots/DATASET/seedSEED (as the reference).
# Environment: DATA (dataset root, default ./data), CFG, SHOTS (default 16), RUN_DIR, OUTPUT_ROOT,
#   DRY_RUN=1, FORCE=1, SOURCE (default imagenet), LOADEP,
#   MODEL_DIR (see scripts/common.sh).
# Trailing KEY VALUE pairs are passed to train.py as config opts.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
baseline_run xd_test MaPLe "${XD_CFG[maple]}" "$@"
