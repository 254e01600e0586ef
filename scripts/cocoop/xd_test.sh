#!/usr/bin/env bash
# CoCoOp, cross-dataset / domain generalisation evaluation: --eval-only of the SOURCE (default imagenet)
# model from xd_train.sh on the test split of DATASET (a Table 2 target or an ImageNet variant).
# Usage:  bash scripts/cocoop/xd_test.sh DATASET SEED [KEY VALUE ...]
# Config: configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml
# Output: OUTPUT_ROOT/evaluation/CoCoOp/CFG_SHOTSshots/DATASET/seedSEED (as the reference).
# Environment: DATA (dataset root, default ./data), CFG, SHOTS (default 16), RUN_DIR, OUTPUT_ROOT,
#   DRY_RUN=1, FORCE=1, SOURCE (default imagenet), LOADEP,
#   MODEL_DIR (see scripts/common.sh).
# Trailing KEY VALUE pairs are passed to train.py as config opts.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
baseline_run xd_test CoCoOp "${XD_CFG[cocoop]}" "$@"
