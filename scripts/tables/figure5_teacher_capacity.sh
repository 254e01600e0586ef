#!/usr/bin/env bash
# Paper Figure 5 (teacher capacity; student ViT-B/16, ImageNet, 64 unlabeled images per class): for every
# teacher backbone in VALUES a PromptSRC teacher (16-shot base classes, scripts/promptsrc/train_teacher.sh
# with MODEL.BACKBONE.NAME <backbone>; the ViT-L/14 teacher is the Table 1 teacher, released under
# TEACHER_ROOT or trained with TRAIN_TEACHERS=1) and a PromptKD student distilled from it
# (TRAINER.PROMPTKD.TEACHER_NAME; the projector's output dimension follows the teacher). Then the figure
# (teacher and student HM against the teacher, the paper's values dashed) and its table
# (tools/results.py --table fig5).
#
# Usage:  bash scripts/tables/figure5_teacher_capacity.sh
# Environment: VALUES (teacher backbones; default "ViT-B/32 ViT-B/16 ViT-L/14"; SMOKE: "tiny-vit-student
#   tiny-vit-teacher", matched as ViT-B/16 and ViT-L/14), DATASETS (default imagenet; SMOKE: dtd), SEEDS
#   (default "1 2 3"; SMOKE: 1), IMAGES_PER_CLASS (replaces the config's 64; -1 = all), TRAIN_TEACHERS=1,
#   TEACHER_ROOT, TEACHER_SEED, SMOKE=1, DRY_RUN=1, FORCE=1, DATA, OUTPUT_ROOT (see scripts/common.sh).
# Config: configs/trainers/PromptKD/ablations/vit_b16_c2_ep20_batch8_4+4ctx_64img.yaml (SMOKE: tiny_smoke);
#   teachers: configs/trainers/PromptSRC/vit_l14_c2_ep20_batch8_4+4ctx.yaml with MODEL.BACKBONE.NAME.
# Output: OUTPUT_ROOT/ablations/fig5_teacher_capacity/{teachers,students}/DATASET/<backbone>/... and
#   OUTPUT_ROOT/tables/fig5_teacher_capacity/results_fig5.{md,json}, fig5.png
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
table_setup
NAME=fig5_teacher_capacity
DEFAULT_VALUES="ViT-B/32 ViT-B/16 ViT-L/14"
STANDARD_TEACHER=ViT-L/14   # the backbone of the Table 1 teacher (cfg_for teacher b2n)
STUDENT_CFG="ablations/vit_b16_c2_ep20_batch8_4+4ctx_64img"
ALIASES=()
if [[ "$SMOKE" == 1 ]]; then
    DEFAULT_VALUES="tiny-vit-student tiny-vit-teacher"
    STANDARD_TEACHER=tiny-vit-teacher
    STUDENT_CFG="$(cfg_for promptkd b2n)"
    ALIASES=(--alias tiny-vit-student=ViT-B/16 --alias tiny-vit-teacher=ViT-L/14)
fi
VALUES="${VALUES:-$DEFAULT_VALUES}"
DATASETS="${DATASETS:-imagenet}"
TEACHER_CFG="$(cfg_for teacher b2n)"
EXTRA=()
[[ -n "${IMAGES_PER_CLASS:-}" ]] && EXTRA=(DATASET.MAX_IMAGES_PER_CLASS "$IMAGES_PER_CLASS")
BASE="$OUTPUT_ROOT/ablations/$NAME"
RESULT_DIRS=("$BASE")

for d in $DATASETS; do dataset_config "$d" >/dev/null; done
for d in $DATASETS; do
    for name in $VALUES; do
        safe="${name//\//-}"
        if [[ "$name" == "$STANDARD_TEACHER" ]]; then
            ensure_teacher base2novel "$d"
            ckpt="$(teacher_ckpt base2novel "$d")"
            if [[ "$TRAIN_TEACHERS" == 1 ]]; then RESULT_DIRS+=("$ckpt"); fi
        else
            ckpt="$BASE/teachers/$d/$safe/seed$TEACHER_SEED"
            RUN_DIR="$ckpt" CFG="$TEACHER_CFG" TEACHER_PROTOCOL=base2novel \
                run_script promptsrc/train_teacher.sh "$d" "$TEACHER_SEED" MODEL.BACKBONE.NAME "$name"
        fi
        for s in $(seed_list); do
            RUN_DIR="$BASE/students/$d/$safe/seed_$s" CFG="$STUDENT_CFG" TEACHER_CKPT="$ckpt" \
                run_script promptkd/base2new_train.sh "$d" "$s" TRAINER.PROMPTKD.TEACHER_TYPE promptsrc \
                TRAINER.PROMPTKD.TEACHER_NAME "$name" "${EXTRA[@]}"
        done
    done
done
run_cmd "$PYTHON" tools/results.py "${RESULT_DIRS[@]}" --table fig5 --out "$OUTPUT_ROOT/tables/$NAME" "${ALIASES[@]}"
