#!/usr/bin/env bash
# CoOp, cross-dataset / domain generalisation evaluation: --eval-only of the SOURCE (default imagenet)
# model from xd_train.sh on the test split of DATASET (a Table 2 target or an ImageNet variant).
# Usage:  bash scripts/coop/xd_test.sh DATASET SEED [KEY VALUE ...]
# Config: configs/trainers/CoOp/vit_b16_ep50_ctxv1.yaml
# Output: OUTPUT_ROOT/evaluation/CoOp/CFG_SHOTSshots/nctxN_cscC_ctpP/DATASET/seedSEED (as the reference).
# Environment: DATA (dataset root, default ./data), CFG, SHOTS (default 16), RUN_DIR, OUTPUT_ROOT,
#   DRY_RUN=1, FORCE=1, NCTX/CSC/CTP, SOURCE (default imagenet), LOADEP,
#   MODEL_DIR (see scripts/common.sh).
# Trailing KEY VALUE pairs are passed to train.py as config opts.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
# CoOp prompt options (as in the CoOp repository's scripts/coop/main.sh). The default configs initialise
# the context from "a photo of a", i.e. 4 context vectors.
coop_opts
baseline_run xd_test CoOp "${XD_CFG[coop]}" "$@"
