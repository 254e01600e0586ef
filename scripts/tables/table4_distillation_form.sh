#!/usr/bin/env bash
# Paper Table 4 (distillation form; ImageNet, 64 unlabeled images per class): one PromptKD student per
# TRAINER.PROMPTKD.LOSS value - logit KL (kl_reference, the paper's PromptKD row), feature L1 and
# feature MSE between the projected student feature and the teacher's image feature (feature_l1,
# feature_mse) - then the table in the paper's layout, the paper's numbers beside ours
# (tools/results.py --table table4).
#
# Usage:  bash scripts/tables/table4_distillation_form.sh
# Environment: VALUES (losses; default "kl_reference feature_l1 feature_mse"; SMOKE: "kl_reference feature_l1 feature_mse"),
#   DATASETS (default imagenet; SMOKE: dtd), SEEDS (default "1 2 3"; SMOKE: 1),
#   IMAGES_PER_CLASS (replaces the config's 64 unlabeled images per class; -1 = all),
#   TRAIN_TEACHERS=1, TEACHER_ROOT, TEACHER_SEED, SMOKE=1, DRY_RUN=1, FORCE=1, DATA, OUTPUT_ROOT
#   (see scripts/common.sh).
# Config: configs/trainers/PromptKD/ablations/vit_b16_c2_ep20_batch8_4+4ctx_64img.yaml (SMOKE: tiny_smoke).
# Output: OUTPUT_ROOT/ablations/table4_distillation_form/DATASET/LOSS_<loss>/seed_<S> and
#   OUTPUT_ROOT/tables/table4_distillation_form/results_table4.{md,json}
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
table_setup
student_key_sweep table4_distillation_form TRAINER.PROMPTKD.LOSS table4 "kl_reference feature_l1 feature_mse" "kl_reference feature_l1 feature_mse"
