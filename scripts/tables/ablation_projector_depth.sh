#!/usr/bin/env bash
# Paper Table 12 (projector depth): PromptKD students on ImageNet (64 unlabeled images per class) with
# TRAINER.PROMPTKD.PROJECT_LAYER in DEPTHS, then tools/results.py --table ablation-projector-depth.
#
# Usage:  bash scripts/tables/ablation_projector_depth.sh
# Environment: DEPTHS (default "1 2 3"), DATASETS (default imagenet), IMAGES_PER_CLASS (default 64; -1 = all),
#   SEEDS, TRAIN_TEACHERS=1, TEACHER_ROOT, SMOKE=1, DRY_RUN=1, FORCE=1, DATA, OUTPUT_ROOT
#   (see scripts/common.sh).
# Output: OUTPUT_ROOT/ablations/projector_depth/DATASET/PROJECT_LAYER_<N>/seed_<S> and
#   OUTPUT_ROOT/tables/ablation_projector_depth/
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
promptkd_sweep projector_depth ablation-projector-depth TRAINER.PROMPTKD.PROJECT_LAYER "${DEPTHS:-1 2 3}"
