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
NAME=fig6_temperature
KEY=TRAINER.PROMPTKD.TEMPERATURE
DEFAULT_VALUES="0.1 0.5 1.0 2.0 4.0"
[[ "$SMOKE" == 1 ]] && DEFAULT_VALUES="1.0 4.0"
VALUES="${VALUES:-$DEFAULT_VALUES}"
DATASETS="${DATASETS:-imagenet}"
STUDENT_CFG="ablations/vit_b16_c2_ep20_batch8_4+4ctx_64img"
[[ "$SMOKE" == 1 ]] && STUDENT_CFG="$(cfg_for promptkd b2n)"
EXTRA=()
[[ -n "${IMAGES_PER_CLASS:-}" ]] && EXTRA=(DATASET.MAX_IMAGES_PER_CLASS "$IMAGES_PER_CLASS")
BASE="$OUTPUT_ROOT/ablations/$NAME"

for d in $DATASETS; do dataset_config "$d" >/dev/null; done
for d in $DATASETS; do
    ensure_teacher base2novel "$d"
    ckpt="$(teacher_ckpt base2novel "$d")"
    for v in $VALUES; do
        for s in $(seed_list); do
            RUN_DIR="$BASE/$d/${KEY##*.}_$v/seed_$s" CFG="$STUDENT_CFG" TEACHER_CKPT="$ckpt" \
                run_script promptkd/base2new_train.sh "$d" "$s" "$KEY" "$v" "${EXTRA[@]}"
        done
    done
done
run_cmd "$PYTHON" tools/results.py "$BASE" --table fig6 --out "$OUTPUT_ROOT/tables/$NAME"
