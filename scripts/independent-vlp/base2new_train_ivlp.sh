#!/usr/bin/env bash
# The MaPLe repository's IVLP entry point, same arguments:  bash scripts/independent-vlp/base2new_train_ivlp.sh DATASET SEED
# = scripts/ivlp/base2new_train.sh with that repository's IVLP config vit_b16_c2_ep5_batch4_2+2ctx (2+2 context
# tokens, depth 12, 5 epochs; CFG=... replaces it). The PromptSRC/PromptKD IVLP row: scripts/ivlp/.
# Output: OUTPUT_ROOT/base2new/train_base/DATASET/shots_16/IVLP/CFG/seedSEED (as the reference).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
CFG="${CFG:-vit_b16_c2_ep5_batch4_2+2ctx}" run_script ivlp/base2new_train.sh "$@"
