#!/usr/bin/env bash
# Paper Figure 6 (KD temperature; ImageNet, 64 unlabeled images per class): one PromptKD student per
# TRAINER.PROMPTKD.TEMPERATURE value, then the figure (line plot of base / novel / HM against the
# temperature, the paper's curve dashed) and its table (tools/results.py --table fig6).
#
# Usage:  bash scripts/tables/figure6_temperature.sh
# Environment: VALUES (temperatures; default "0.1 0.5 1.0 2.0 4.0"; SMOKE: "1.0 4.0"),
#   DATASETS (default imagenet; SMOKE: dtd), SEEDS (default "1 2 3"; SMOKE: 1),
#   IMAGES_PER_CLASS (replaces the config's 64 unlabeled images per class; -1 = all),
#   TRAIN_TEACHERS=1, TEACHER_ROOT, TEACHER_SEED, SMOKE=1, DRY_RUN=1, FORCE=1, DATA, OUTPUT_ROOT
#   (see scripts/common.sh).
# Config: configs/trainers/PromptKD/ablations/vit_b16_c2_ep20_batch8_4+4ctx_64img.yaml (SMOKE: tiny_smoke).
# Output: OUTPUT_ROOT/ablations/fig6_temperature/DATASET/TEMPERATURE_<T>/seed_<S> and
#   OUTPUT_ROOT/tables/fig6_temperature/results_fig6.{md,json}, fig6.png
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
table_setup
student_key_sweep fig6_temperature TRAINER.PROMPTKD.TEMPERATURE fig6 "0.1 0.5 1.0 2.0 4.0" "1.0 4.0"
