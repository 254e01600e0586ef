#!/usr/bin/env bash
# CoCoOp, cross-dataset / domain generalisation source model (paper Tables 2 and 9): SHOTS-shot training
# on all classes of DATASET (normally imagenet).
# Usage:  bash scripts/cocoop/xd_train.sh DATASET SEED [KEY VALUE ...]
#         bash scripts/cocoop/xd_train.sh SEED     (the CoOp repository's form: DATASET is imagenet)
# Config: configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml
# Output: OUTPUT_ROOT/DATASET/CoCoOp/CFG_SHOTSshots/seedSEED (as the reference).
# Environment: DATA (dataset root, default ./data), CFG, SHOTS (default 16), RUN_DIR, OUTPUT_ROOT,
#   DRY_RUN=1, FORCE=1 (see scripts/common.sh).
# Trailing KEY VALUE pairs are passed to train.py as config opts.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
if [[ $# -eq 1 && "$1" =~ ^[0-9]+$ ]]; then
    set -- imagenet "$1"
fi
baseline_run xd_train CoCoOp "${XD_CFG[cocoop]}" "$@"
