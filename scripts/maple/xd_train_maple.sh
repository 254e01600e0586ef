#!/usr/bin/env bash
# The MaPLe repository's entry point, same arguments:  bash scripts/maple/xd_train_maple.sh DATASET SEED
# (DATASET: imagenet) = scripts/maple/xd_train.sh (16-shot source training, vit_b16_c2_ep5_batch4_2ctx_cross_datasets).
# Output: OUTPUT_ROOT/DATASET/MaPLe/CFG_16shots/seedSEED (as the reference).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
run_script maple/xd_train.sh "$@"
