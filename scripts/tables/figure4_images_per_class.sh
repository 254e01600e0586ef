#!/usr/bin/env bash
# Paper Figure 4 (unlabeled images per class used for distillation; ImageNet): one PromptKD student
# per DATASET.MAX_IMAGES_PER_CLASS value (-1 = the full train split); the images of each class are
# sampled once per seed and cached (datasets/protocol.py), then the figure (line plot of base / novel /
# HM against images per class, the paper's curve dashed) and its table (tools/results.py --table fig4).
#
# Usage:  bash scripts/tables/figure4_images_per_class.sh
# Environment: VALUES (images per class; default "16 32 64 128 256 -1"; SMOKE: "1 -1"),
#   DATASETS (default imagenet; SMOKE: dtd), SEEDS (default "1 2 3"; SMOKE: 1),
#   TRAIN_TEACHERS=1, TEACHER_ROOT, TEACHER_SEED, SMOKE=1, DRY_RUN=1, FORCE=1, DATA, OUTPUT_ROOT
#   (see scripts/common.sh).
# Config: configs/trainers/PromptKD/ablations/vit_b16_c2_ep20_batch8_4+4ctx_64img.yaml (SMOKE: tiny_smoke).
# Output: OUTPUT_ROOT/ablations/fig4_images_per_class/DATASET/MAX_IMAGES_PER_CLASS_<N>/seed_<S> and
#   OUTPUT_ROOT/tables/fig4_images_per_class/results_fig4.{md,json}, fig4.png
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
table_setup
# The swept key is the image cap itself, so IMAGES_PER_CLASS must not add a second one.
IMAGES_PER_CLASS="" student_key_sweep fig4_images_per_class DATASET.MAX_IMAGES_PER_CLASS fig4 \
    "16 32 64 128 256 -1" "1 -1"
