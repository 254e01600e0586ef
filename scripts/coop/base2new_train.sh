#!/usr/bin/env bash
# CoOp, base-to-novel (paper Table 1): train on SHOTS-shot data of the BASE classes of DATASET; the run
# then evaluates base and novel test classes with its final checkpoint (results.json: base_acc,
# novel_acc, hm).
# Usage:  bash scripts/coop/base2new_train.sh DATASET SEED [KEY VALUE ...]
# Config: configs/trainers/CoOp/vit_b16_ctxv1.yaml
# Output: OUTPUT_ROOT/base2new/train_base/DATASET/shots_SHOTS/CoOp/CFG/seedSEED (as the reference).
# Environment: DATA (dataset root, default ./data), CFG, SHOTS (default 16), RUN_DIR, OUTPUT_ROOT,
#   DRY_RUN=1, FORCE=1, NCTX/CSC/CTP (see scripts/common.sh).
# Trailing KEY VALUE pairs are passed to train.py as config opts.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
# CoOp prompt options (as in the CoOp repository's scripts/coop/main.sh). The default configs initialise
# the context from "a photo of a", i.e. 4 context vectors.
coop_opts
baseline_run b2n_train CoOp "${B2N_CFG[coop]}" "$@"
