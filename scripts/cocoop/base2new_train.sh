#!/usr/bin/env bash
# CoCoOp, base-to-novel (paper Table 1): train on SHOTS-shot data of the BASE classes of DATASET; the run
# then evaluates base and novel test classes with its final checkpoint (results.json: base_acc,
# novel_acc, hm).
# Usage:  bash scripts/cocoop/base2new_train.sh DATASET SEED [KEY VALUE ...]
# Config: configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml
# Output: OUTPUT_ROOT/base2new/train_base/DATASET/shots_SHOTS/CoCoOp/CFG/seedSEED (as the reference).
# Environment: DATA (dataset root, default ./data), CFG, SHOTS (default 16), RUN_DIR, OUTPUT_ROOT,
#   DRY_RUN=1, FORCE=1 (see scripts/common.sh).
# Trailing KEY VALUE pairs are passed to train.py as config opts.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
baseline_run b2n_train CoCoOp "${B2N_CFG[cocoop]}" "$@"
