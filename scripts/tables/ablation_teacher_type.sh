#!/usr/bin/env bash
# Paper Fig. 5 (teacher capacity) and Table 6 (teacher pre-training method): for every teacher in
# TEACHERS distil a ViT-B/16 PromptKD student on ImageNet (64 unlabeled images per class), then
# tools/results.py --table ablation-teacher-type (rows keyed by TRAINER.PROMPTKD.TEACHER_TYPE and
# TEACHER_NAME).
#   promptsrc:<CLIP name>  a PromptSRC teacher of that backbone, trained here first (16-shot base
#                          classes, scripts/promptsrc/train_teacher.sh with MODEL.BACKBONE.NAME <name>)
#   zeroshot:<CLIP name>   vanilla zero-shot CLIP as the teacher (TRAINER.PROMPTKD.TEACHER_TYPE zeroshot)
# (Table 6's MaPLe teacher is not covered: the student loads PromptSRC-style teacher checkpoints.)
#
# Usage:  bash scripts/tables/ablation_teacher_type.sh
# Environment: TEACHERS (default "promptsrc:ViT-B/32 promptsrc:ViT-B/16 promptsrc:ViT-L/14
#   zeroshot:ViT-L/14"; SMOKE: "promptsrc:tiny-vit-teacher zeroshot:tiny-vit-teacher"), DATASETS (default
#   imagenet), IMAGES_PER_CLASS (default 64; -1 = all), SEEDS, TEACHER_SEED, SMOKE=1, DRY_RUN=1, FORCE=1,
#   DATA, OUTPUT_ROOT (see scripts/common.sh).
# Output: OUTPUT_ROOT/ablations/teacher_type/{teachers,students}/DATASET/<type>-<name>/... and
#   OUTPUT_ROOT/tables/ablation_teacher_type/
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
table_setup
DATASETS="${DATASETS:-imagenet}"
PER_CLASS="${IMAGES_PER_CLASS:-64}"
[[ "$PER_CLASS" =~ ^-?[0-9]+$ ]] || die "IMAGES_PER_CLASS must be an integer (-1 = all), got '$PER_CLASS'"
if [[ "$SMOKE" == 1 ]]; then
    TEACHERS="${TEACHERS:-promptsrc:tiny-vit-teacher zeroshot:tiny-vit-teacher}"
fi
TEACHERS="${TEACHERS:-promptsrc:ViT-B/32 promptsrc:ViT-B/16 promptsrc:ViT-L/14 zeroshot:ViT-L/14}"
STUDENT_CFG="$(cfg_for promptkd b2n)"
TEACHER_CFG="$(cfg_for teacher b2n)"
BASE="$OUTPUT_ROOT/ablations/teacher_type"

for spec in $TEACHERS; do
    [[ "$spec" == promptsrc:* || "$spec" == zeroshot:* ]] \
        || die "TEACHERS entries are promptsrc:<CLIP name> or zeroshot:<CLIP name>, got '$spec'"
done
for d in $DATASETS; do dataset_config "$d" >/dev/null; done
for d in $DATASETS; do
    for spec in $TEACHERS; do
        type="${spec%%:*}"
        name="${spec#*:}"
        safe="${type}-${name//\//-}"
        teacher_opts=(TRAINER.PROMPTKD.TEACHER_TYPE "$type" TRAINER.PROMPTKD.TEACHER_NAME "$name")
        if [[ "$type" == promptsrc ]]; then
            tdir="$BASE/teachers/$d/$safe/seed$TEACHER_SEED"
            RUN_DIR="$tdir" CFG="$TEACHER_CFG" TEACHER_PROTOCOL=base2novel \
                run_script promptsrc/train_teacher.sh "$d" "$TEACHER_SEED" MODEL.BACKBONE.NAME "$name"
            teacher_opts+=(TRAINER.PROMPTKD.TEACHER_CKPT "$tdir")
        fi
        for s in $(seed_list); do
            RUN_DIR="$BASE/students/$d/$safe/seed_$s" CFG="$STUDENT_CFG" \
                run_script promptkd/base2new_train.sh "$d" "$s" \
                "${teacher_opts[@]}" DATASET.MAX_IMAGES_PER_CLASS "$PER_CLASS"
        done
    done
done
results_table ablation-teacher-type ablation_teacher_type "$BASE/students"
