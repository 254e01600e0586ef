#!/usr/bin/env bash
# IVLP, base-to-novel (paper Table 1): train on SHOTS-shot data of the BASE classes of DATASET; the run
# then evaluates base and novel test classes with its final checkpoint (results.json: base_acc,
# novel_acc, hm).
# Usage:  bash scripts/ivlp/base2new_train.sh DATASET SEED [KEY VALUE ...]
# Config: configs/trainers/IVLP/vit_b16_c2_ep20_batch4_4+4ctx.yaml
# Output: OUTPUT_ROOT/base2new/train_base/DATASET/shots_SHOTS/IVLP/CFG/seedSEED (as the reference).
# Environment: DATA (dataset root, default ./data), CFG, SHOTS (default 16), RUN_DIR, OUTPUT_ROOT,
#   DRY_RUN=1, FORCE=1 (see scripts/common.sh).
# Trailing KEY VALUE pairs are passed to train.py as config opts.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
baseline_run b2n_train IVLP "${B2N_CFG[ivlp]}" "$@"
