#!/usr/bin/env bash
# PromptSRC, cross-dataset / domain generalisation source model (paper Tables 2 and 9): SHOTS-shot training
# on all classes of DATASET (normally imagenet).
# Usage:  bash scripts/promptsrc/xd_train.sh DATASET SEED [KEY VALUE ...]
# Config: configs/trainers/PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets.yaml
# Output: OUTPUT_ROOT/DATASET/PromptSRC/CFG_SHOTSshots/seedSEED (as the reference).
# Environment: DATA (dataset root, default ./data), CFG, SHOTS (default 16), RUN_DIR, OUTPUT_ROOT,
#   DRY_RUN=1, FORCE=1 (see scripts/common.sh).
# Trailing KEY VALUE pairs are passed to train.py as config opts.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
baseline_run xd_train PromptSRC "${XD_CFG[promptsrc]}" "$@"
