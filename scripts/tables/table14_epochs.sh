#!/usr/bin/env bash
# Paper Table 14 (supplementary; training epochs; ImageNet, 64 unlabeled images per class): one
# PromptKD student per OPTIM.MAX_EPOCH value (cosine schedule over the whole run), then the table in
# the paper's layout, the paper's numbers beside ours (tools/results.py --table table14).
#
# Usage:  bash scripts/tables/table14_epochs.sh
# Environment: VALUES (epoch counts; default "20 40 60"; SMOKE: "1 2"),
#   DATASETS (default imagenet; SMOKE: dtd), SEEDS (default "1 2 3"; SMOKE: 1),
#   IMAGES_PER_CLASS (replaces the config's 64 unlabeled images per class; -1 = all),
#   TRAIN_TEACHERS=1, TEACHER_ROOT, TEACHER_SEED, SMOKE=1, DRY_RUN=1, FORCE=1, DATA, OUTPUT_ROOT
#   (see scripts/common.sh).
# Config: configs/trainers/PromptKD/ablations/vit_b16_c2_ep20_batch8_4+4ctx_64img.yaml (SMOKE: tiny_smoke).
# Output: OUTPUT_ROOT/ablations/table14_epochs/DATASET/MAX_EPOCH_<E>/seed_<S> and
#   OUTPUT_ROOT/tables/table14_epochs/results_table14.{md,json}
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
table_setup
student_key_sweep table14_epochs OPTIM.MAX_EPOCH table14 "20 40 60" "1 2"
