#!/usr/bin/env bash
# The MaPLe repository's entry point, same arguments:  bash scripts/maple/xd_test_maple.sh DATASET SEED
# = scripts/maple/xd_test.sh (the ImageNet model evaluated on DATASET, epoch 2 = the config's last).
# Output: OUTPUT_ROOT/evaluation/MaPLe/CFG_16shots/DATASET/seedSEED (as the reference).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
run_script maple/xd_test.sh "$@"
