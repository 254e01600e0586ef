#!/usr/bin/env bash
# Paper Table 6 (teacher pre-training method; teacher ViT-L/14 -> student ViT-B/16, ImageNet, 64 unlabeled
# images per class). For every teacher type in VALUES, the teacher's own base/novel accuracy and a
# PromptKD student distilled from it (TRAINER.PROMPTKD.TEACHER_TYPE):
#   zeroshot   vanilla CLIP ViT-L/14 (evaluated with scripts/zsclip/base2new_test.sh)
#   maple      a MaPLe ViT-L/14 trained here on 16-shot base classes (scripts/maple/base2new_train.sh with
#              MODEL.BACKBONE.NAME ViT-L/14), or MAPLE_TEACHER_CKPT (a MaPLe checkpoint / run folder;
#              {dataset} placeholder allowed); the student uses its class vectors and its image tower
#              with the coupled visual prompts
#   promptsrc  the PromptSRC ViT-L/14 teacher of Table 1 (released under TEACHER_ROOT, or TRAIN_TEACHERS=1)
# With REFERENCE_ROWS=1 (default) also the reference rows CLIP ViT-B/16 and PromptSRC ViT-B/16 (the Table 1
# runs). Then the table in the paper's layout (tools/results.py --table table6).
#
# Usage:  bash scripts/tables/table6_teacher_type.sh
# Environment: VALUES (teacher types; default "zeroshot maple promptsrc"), REFERENCE_ROWS (default 1),
#   MAPLE_TEACHER_CKPT, DATASETS (default imagenet; SMOKE: dtd), SEEDS (default "1 2 3"; SMOKE: 1),
#   IMAGES_PER_CLASS (replaces the config's 64; -1 = all), TRAIN_TEACHERS=1, TEACHER_ROOT, TEACHER_SEED,
#   SMOKE=1 (tiny-vit-teacher stands for ViT-L/14, tiny-vit-student for ViT-B/16), DRY_RUN=1, FORCE=1,
#   DATA, OUTPUT_ROOT (see scripts/common.sh).
# Output: OUTPUT_ROOT/ablations/table6_teacher_type/{teachers,students}/DATASET/<type>/... and
#   OUTPUT_ROOT/tables/table6_teacher_type/results_table6.{md,json}
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
table_setup
NAME=table6_teacher_type
VALUES="${VALUES:-zeroshot maple promptsrc}"
REFERENCE_ROWS="${REFERENCE_ROWS:-1}"
DATASETS="${DATASETS:-imagenet}"
TEACHER_CLIP=ViT-L/14
ZS_TEACHER_CFG=vit_l14
STUDENT_CFG="ablations/vit_b16_c2_ep20_batch8_4+4ctx_64img"
ALIASES=()
if [[ "$SMOKE" == 1 ]]; then
    TEACHER_CLIP=tiny-vit-teacher
    ZS_TEACHER_CFG="$(cfg_for zsclip b2n)"
    STUDENT_CFG="$(cfg_for promptkd b2n)"
    ALIASES=(--alias tiny-vit-teacher=ViT-L/14 --alias tiny-vit-student=ViT-B/16)
fi
EXTRA=()
[[ -n "${IMAGES_PER_CLASS:-}" ]] && EXTRA=(DATASET.MAX_IMAGES_PER_CLASS "$IMAGES_PER_CLASS")
BASE="$OUTPUT_ROOT/ablations/$NAME"
RESULT_DIRS=("$BASE")

for t in $VALUES; do
    [[ "$t" == zeroshot || "$t" == maple || "$t" == promptsrc ]] \
        || die "unknown teacher type '$t' (VALUES); choose from: zeroshot maple promptsrc"
done
for d in $DATASETS; do dataset_config "$d" >/dev/null; done
for d in $DATASETS; do
    if [[ "$REFERENCE_ROWS" == 1 ]]; then
        zcfg="$(cfg_for zsclip b2n)"
        pcfg="$(cfg_for promptsrc b2n)"
        CFG="$zcfg" run_script zsclip/base2new_test.sh "$d" "$(first_seed)"
        for s in $(seed_list); do
            CFG="$pcfg" run_script promptsrc/base2new_train.sh "$d" "$s"
        done
        RESULT_DIRS+=("$OUTPUT_ROOT/base2new/zeroshot/$d/ZeroshotCLIP/$zcfg"
                      "$(dirname "$(b2n_dir train_base "$d" 16 PromptSRC "$pcfg" seed1)")")
    fi
    for t in $VALUES; do
        ckpt=""
        case "$t" in
            zeroshot)
                RUN_DIR="$BASE/teachers/$d/zeroshot/seed$(first_seed)" CFG="$ZS_TEACHER_CFG" \
                    run_script zsclip/base2new_test.sh "$d" "$(first_seed)" MODEL.BACKBONE.NAME "$TEACHER_CLIP" ;;
            maple)
                if [[ -n "${MAPLE_TEACHER_CKPT:-}" ]]; then
                    ckpt="$MAPLE_TEACHER_CKPT"
                else
                    ckpt="$BASE/teachers/$d/maple/seed$TEACHER_SEED"
                    RUN_DIR="$ckpt" CFG="$(cfg_for maple b2n)" \
                        run_script maple/base2new_train.sh "$d" "$TEACHER_SEED" MODEL.BACKBONE.NAME "$TEACHER_CLIP"
                fi ;;
            promptsrc)
                ensure_teacher base2novel "$d"
                ckpt="$(teacher_ckpt base2novel "$d")"
                if [[ "$TRAIN_TEACHERS" == 1 ]]; then RESULT_DIRS+=("$ckpt"); fi ;;
        esac
        for s in $(seed_list); do
            RUN_DIR="$BASE/students/$d/$t/seed_$s" CFG="$STUDENT_CFG" TEACHER_CKPT="$ckpt" \
                run_script promptkd/base2new_train.sh "$d" "$s" TRAINER.PROMPTKD.TEACHER_TYPE "$t" \
                TRAINER.PROMPTKD.TEACHER_NAME "$TEACHER_CLIP" "${EXTRA[@]}"
        done
    done
done
run_cmd "$PYTHON" tools/results.py "${RESULT_DIRS[@]}" --table table6 --out "$OUTPUT_ROOT/tables/$NAME" "${ALIASES[@]}"
