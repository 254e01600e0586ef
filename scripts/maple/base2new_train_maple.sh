#!/usr/bin/env bash
# The MaPLe repository's entry point, same arguments:  bash scripts/maple/base2new_train_maple.sh DATASET SEED
# = scripts/maple/base2new_train.sh (16-shot base-class training, config vit_b16_c2_ep5_batch4_2ctx).
# Output: OUTPUT_ROOT/base2new/train_base/DATASET/shots_16/MaPLe/CFG/seedSEED (as the reference).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
run_script maple/base2new_train.sh "$@"
