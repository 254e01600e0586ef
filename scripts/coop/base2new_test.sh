#!/usr/bin/env bash
# CoOp, base-to-novel, reference-style novel evaluation: --eval-only of the base2new_train.sh checkpoint
# (epoch LOADEP, default the config's MAX_EPOCH) with DATASET.SUBSAMPLE_CLASSES new.
# Usage:  bash scripts/coop/base2new_test.sh DATASET SEED [KEY VALUE ...]
# Config: configs/trainers/CoOp/vit_b16_ctxv1.yaml
# Output: OUTPUT_ROOT/base2new/test_new/DATASET/shots_SHOTS/CoOp/CFG/seedSEED (as the reference).
# Environment: DATA (dataset root, default ./data), CFG, SHOTS (default 16), RUN_DIR, OUTPUT_ROOT,
#   DRY_RUN=1, FORCE=1, NCTX/CSC/CTP, LOADEP, MODEL_DIR (see scripts/common.sh).
# Trailing KEY VALUE pairs are passed to train.py as config opts.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
# CoOp prompt options (as in the CoOp repository's scripts/coop/main.sh). The default configs initialise
# the context from "a photo of a", i.e. 4 context vectors.
coop_opts
baseline_run b2n_test CoOp "${B2N_CFG[coop]}" "$@"
