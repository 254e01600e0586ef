#!/usr/bin/env bash
# The MaPLe repository's IVLP entry point, same arguments:  bash scripts/independent-vlp/base2new_test_ivlp.sh DATASET SEED
# = scripts/ivlp/base2new_test.sh with config vit_b16_c2_ep5_batch4_2+2ctx (novel classes, epoch 5).
# Output: OUTPUT_ROOT/base2new/test_new/DATASET/shots_16/IVLP/CFG/seedSEED (as the reference).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
CFG="${CFG:-vit_b16_c2_ep5_batch4_2+2ctx}" run_script ivlp/base2new_test.sh "$@"
