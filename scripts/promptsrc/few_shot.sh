#!/usr/bin/env bash
# PromptSRC few-shot classification (all classes, K shots), seeds SEEDS (default "1 2 3").
# Config: configs/trainers/PromptSRC/vit_b16_c2_ep50_batch4_4+4ctx_few_shot.yaml, or its _fine_grained
# variant (GPA 45/5) for stanford_cars, oxford_flowers, fgvc_aircraft, dtd and eurosat (the reference kept
# that choice in a yaml comment).
#
# Usage:  bash scripts/promptsrc/few_shot.sh DATASET SHOTS [KEY VALUE ...]
# Environment: DATA (default ./data), SEEDS, CFG, OUTPUT_ROOT, DRY_RUN=1, FORCE=1 (see scripts/common.sh).
# Output: OUTPUT_ROOT/DATASET/PromptSRC/CFG_SHOTSshots/seedSEED (as the reference).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
require_dataset_seed "$(basename "$0") DATASET SHOTS [KEY VALUE ...]" "$@"

TRAINER=PromptSRC
DATASET=$1
SHOTS=$2
case "$DATASET" in
    stanford_cars | oxford_flowers | fgvc_aircraft | dtd | eurosat)
        DEFAULT_CFG=vit_b16_c2_ep50_batch4_4+4ctx_few_shot_fine_grained ;;
    *) DEFAULT_CFG=vit_b16_c2_ep50_batch4_4+4ctx_few_shot ;;
esac
CFG="${CFG:-$DEFAULT_CFG}"
[[ "$SHOTS" -ge 1 ]] || die "SHOTS must be >= 1 for few-shot training, got $SHOTS"

DATASET_CFG="$(dataset_config "$DATASET")"
TRAINER_CFG="$(trainer_config "$TRAINER" "$CFG")"
for SEED in $(seed_list); do
    DIR="$(xd_dir "$DATASET" "$TRAINER" "$CFG" "$SHOTS" "$SEED")"
    run_job "$DIR" "$TRAINER" "$DATASET_CFG" "$TRAINER_CFG" "$SEED" "run this job and save the output to $DIR" \
        DATASET.NUM_SHOTS "$SHOTS" \
        DATASET.SUBSAMPLE_CLASSES all \
        DATASET.EVAL_PROTOCOL subsample \
        "${@:3}"
done
