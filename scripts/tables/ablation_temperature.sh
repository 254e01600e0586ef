#!/usr/bin/env bash
# Paper Fig. 6 (KD temperature): PromptKD students on ImageNet (64 unlabeled images per class) with
# TRAINER.PROMPTKD.TEMPERATURE in TEMPS, then tools/results.py --table ablation-temperature.
#
# Usage:  bash scripts/tables/ablation_temperature.sh
# Environment: TEMPS (default "0.1 0.5 1.0 2.0 4.0"), DATASETS (default imagenet), IMAGES_PER_CLASS
#   (default 64; -1 = all), SEEDS, TRAIN_TEACHERS=1, TEACHER_ROOT, SMOKE=1, DRY_RUN=1, FORCE=1, DATA,
#   OUTPUT_ROOT (see scripts/common.sh).
# Output: OUTPUT_ROOT/ablations/temperature/DATASET/TEMPERATURE_<T>/seed_<S> and
#   OUTPUT_ROOT/tables/ablation_temperature/
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
promptkd_sweep temperature ablation-temperature TRAINER.PROMPTKD.TEMPERATURE "${TEMPS:-0.1 0.5 1.0 2.0 4.0}"
