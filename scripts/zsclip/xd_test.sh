#!/usr/bin/env bash
# Zero-shot CLIP on the test split of DATASET, all classes (CLIP rows of paper Tables 2 and 9).
#
# Usage:  bash scripts/zsclip/xd_test.sh DATASET SEED [KEY VALUE ...]
# Environment: DATA (default ./data), CFG (default vit_b16), RUN_DIR, OUTPUT_ROOT, DRY_RUN=1, FORCE=1
#   (see scripts/common.sh).
# Output: OUTPUT_ROOT/evaluation/ZeroshotCLIP/CFG/DATASET/seedSEED
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
zsclip_run xd "$@"
