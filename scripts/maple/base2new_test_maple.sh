#!/usr/bin/env bash
# The MaPLe repository's entry point, same arguments:  bash scripts/maple/base2new_test_maple.sh DATASET SEED
# = scripts/maple/base2new_test.sh (novel-class evaluation of the base2new_train_maple.sh model, epoch 5).
# Output: OUTPUT_ROOT/base2new/test_new/DATASET/shots_16/MaPLe/CFG/seedSEED (as the reference).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
run_script maple/base2new_test.sh "$@"
