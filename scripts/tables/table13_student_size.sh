#!/usr/bin/env bash
# Paper Table 13 (supplementary; student size, full ImageNet train split, teacher PromptSRC ViT-L/14): a
# PromptKD student per backbone in VALUES (MODEL.BACKBONE.NAME; the projector's input dimension is read from
# the model), the zero-shot CLIP of each backbone (REFERENCE_ROWS=1, default) and, with TRAIN_TEACHERS=1, the
# teacher's own accuracy; then the table in the paper's layout (tools/results.py --table table13).
#
# Usage:  bash scripts/tables/table13_student_size.sh
# Environment: VALUES (student backbones; default "ViT-B/32 ViT-B/16"; SMOKE: "tiny-vit-student
#   tiny-vit-teacher", matched as ViT-B/32 and ViT-B/16), REFERENCE_ROWS (default 1), DATASETS (default
#   imagenet; SMOKE: dtd), SEEDS (default "1 2 3"; SMOKE: 1), TRAIN_TEACHERS=1, TEACHER_ROOT, TEACHER_SEED,
#   SMOKE=1, DRY_RUN=1, FORCE=1, DATA, OUTPUT_ROOT (see scripts/common.sh).
# Config: the Table 1 student config (configs/trainers/PromptKD/vit_b16_c2_ep20_batch8_4+4ctx.yaml; SMOKE:
#   tiny_smoke) with MODEL.BACKBONE.NAME per row.
# Output: OUTPUT_ROOT/ablations/table13_student_size/DATASET/{<backbone>,clip-<backbone>}/seed_<S> and
#   OUTPUT_ROOT/tables/table13_student_size/results_table13.{md,json}
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
table_setup
NAME=table13_student_size
DEFAULT_VALUES="ViT-B/32 ViT-B/16"
ALIASES=()
if [[ "$SMOKE" == 1 ]]; then
    DEFAULT_VALUES="tiny-vit-student tiny-vit-teacher"
    ALIASES=(--alias tiny-vit-student=ViT-B/32 --alias tiny-vit-teacher=ViT-B/16)
fi
VALUES="${VALUES:-$DEFAULT_VALUES}"
REFERENCE_ROWS="${REFERENCE_ROWS:-1}"
DATASETS="${DATASETS:-imagenet}"
STUDENT_CFG="$(cfg_for promptkd b2n)"
BASE="$OUTPUT_ROOT/ablations/$NAME"
RESULT_DIRS=("$BASE")

for d in $DATASETS; do dataset_config "$d" >/dev/null; done
for d in $DATASETS; do
    ensure_teacher base2novel "$d"
    ckpt="$(teacher_ckpt base2novel "$d")"
    if [[ "$TRAIN_TEACHERS" == 1 ]]; then RESULT_DIRS+=("$ckpt"); fi
    for name in $VALUES; do
        safe="${name//\//-}"
        if [[ "$REFERENCE_ROWS" == 1 ]]; then
            RUN_DIR="$BASE/$d/clip-$safe/seed$(first_seed)" CFG="$(cfg_for zsclip b2n)" \
                run_script zsclip/base2new_test.sh "$d" "$(first_seed)" MODEL.BACKBONE.NAME "$name"
        fi
        for s in $(seed_list); do
            RUN_DIR="$BASE/$d/$safe/seed_$s" CFG="$STUDENT_CFG" TEACHER_CKPT="$ckpt" \
                run_script promptkd/base2new_train.sh "$d" "$s" MODEL.BACKBONE.NAME "$name"
        done
    done
done
run_cmd "$PYTHON" tools/results.py "${RESULT_DIRS[@]}" --table table13 --out "$OUTPUT_ROOT/tables/$NAME" "${ALIASES[@]}"
