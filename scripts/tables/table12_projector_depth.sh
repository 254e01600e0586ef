#!/usr/bin/env bash
# Paper Table 12 (supplementary; projector depth; ImageNet, 64 unlabeled images per class): one
# PromptKD student per TRAINER.PROMPTKD.PROJECT_LAYER value (1 = Linear, 2 = Linear-BN-ReLU-Linear as
# the paper, 3 = one more BN-ReLU-Linear), then the table in the paper's layout, the paper's numbers
# beside ours (tools/results.py --table table12).
#
# Usage:  bash scripts/tables/table12_projector_depth.sh
# Environment: VALUES (projector depths; default "1 2 3"; SMOKE: "1 2"),
#   DATASETS (default imagenet; SMOKE: dtd), SEEDS (default "1 2 3"; SMOKE: 1),
#   IMAGES_PER_CLASS (replaces the config's 64 unlabeled images per class; -1 = all),
#   TRAIN_TEACHERS=1, TEACHER_ROOT, TEACHER_SEED, SMOKE=1, DRY_RUN=1, FORCE=1, DATA, OUTPUT_ROOT
#   (see scripts/common.sh).
# Config: configs/trainers/PromptKD/ablations/vit_b16_c2_ep20_batch8_4+4ctx_64img.yaml (SMOKE: tiny_smoke).
# Output: OUTPUT_ROOT/ablations/table12_projector_depth/DATASET/PROJECT_LAYER_<N>/seed_<S> and
#   OUTPUT_ROOT/tables/table12_projector_depth/results_table12.{md,json}
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
table_setup
student_key_sweep table12_projector_depth TRAINER.PROMPTKD.PROJECT_LAYER table12 "1 2 3" "1 2"
