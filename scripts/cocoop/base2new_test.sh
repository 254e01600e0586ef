#!/usr/bin/env bash
# CoCoOp, base-to-novel, reference-style novel evaluation: --eval-only of the base2new_train.sh checkpoint
# (epoch LOADEP, default the config's MAX_EPOCH) with DATASET.SUBSAMPLE_CLASSES new.
# Usage:  bash scripts/cocoop/base2new_test.sh DATASET SEED [KEY VALUE ...]
# Config: configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml
# Output: OUTPUT_ROOT/base2new/test_new/DATASET/shots_SHOTS/CoCoOp/CFG/seedSEED (as the reference).
# Environment: DATA (dataset root, default ./data), CFG, SHOTS (default 16), RUN_DIR, OUTPUT_ROOT,
#   DRY_RUN=1, FORCE=1, LOADEP, MODEL_DIR (see scripts/common.sh).
# Trailing KEY VALUE pairs are passed to train.py as config opts.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
baseline_run b2n_test CoCoOp "${B2N_CFG[cocoop]}" "$@"
