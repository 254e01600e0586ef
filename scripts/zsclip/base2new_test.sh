#!/usr/bin/env bash
# Zero-shot CLIP in the base-to-novel protocol (CLIP row of paper Table 1; the reference had no script
# for it): evaluates base and novel test classes (results.json: base_acc, novel_acc, hm). Zero-shot CLIP
# is deterministic, one seed is enough.
#
# Usage:  bash scripts/zsclip/base2new_test.sh DATASET SEED [KEY VALUE ...]
# Environment: DATA (default ./data), CFG (default vit_b16), RUN_DIR, OUTPUT_ROOT, DRY_RUN=1, FORCE=1
#   (see scripts/common.sh).
# Output: OUTPUT_ROOT/base2new/zeroshot/DATASET/ZeroshotCLIP/CFG/seedSEED
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
zsclip_run b2n "$@"
