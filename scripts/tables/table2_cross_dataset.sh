#!/usr/bin/env bash
# Paper Table 2 (cross-dataset transfer, source ImageNet): baselines trained on ImageNet 16-shot and
# evaluated on the 10 targets; zero-shot CLIP; PromptKD distilled from the ImageNet teacher on each
# target's unlabeled training images (transductive, as in the paper). Then tools/results.py --table cross.
# Configs: XD_CFG in scripts/common.sh (see configs/README.md).
#
# Usage:  bash scripts/tables/table2_cross_dataset.sh
# Environment: DATA, SEEDS (default "1 2 3"), DATASETS (targets; default the 10 of Table 2), SOURCE
#   (default imagenet; SMOKE: dtd), METHODS (default "zsclip coop cocoop maple promptsrc promptkd"),
#   TRAIN_TEACHERS=1, TEACHER_ROOT, TEACHER_SEED, SMOKE=1, DRY_RUN=1, FORCE=1, OUTPUT_ROOT
#   (see scripts/common.sh).
# Output: OUTPUT_ROOT/tables/table_cross/results_cross.{md,json}, hm_cross.png
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
xd_table cross "$XD_TARGETS"
