#!/usr/bin/env bash
# PromptSRC, base-to-novel, reference-style novel evaluation: --eval-only of the base2new_train.sh checkpoint
# (epoch LOADEP, default the config's MAX_EPOCH) with DATASET.SUBSAMPLE_CLASSES new.
# Usage:  bash scripts/promptsrc/base2new_test.sh DATASET SEED [KEY VALUE ...]
# Config: configs/trainers/PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx.yaml
# Output: OUTPUT_ROOT/base2new/test_new/DATASET/shots_SHOTS/PromptSRC/CFG/seedSEED (as the reference).
# Environment: DATA (dataset root, default ./data), CFG, SHOTS (default 16), RUN_DIR, OUTPUT_ROOT,
#   DRY_RUN=1, FORCE=1, LOADEP, MODEL_DIR (see scripts/common.sh).
# Trailing KEY VALUE pairs are passed to train.py as config opts.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
baseline_run b2n_test PromptSRC "${B2N_CFG[promptsrc]}" "$@"
