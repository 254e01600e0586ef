#!/usr/bin/env bash
# Paper Table 1 (base-to-novel generalisation, ViT-B/16): every method x dataset x seed, then the table
# (mean +- std over seeds, HM of the means, average row, paper numbers and deltas) with tools/results.py.
#   CLIP (zsclip), CoOp, CoCoOp, MaPLe, PromptSRC: 16-shot base-class training, base + novel evaluation.
#   PromptKD: teacher per dataset (released, or TRAIN_TEACHERS=1), student on all unlabeled train images.
# Configs: B2N_CFG in scripts/common.sh (see configs/README.md).
#
# Usage:  bash scripts/tables/table1_base2new.sh
# Environment: DATA, SEEDS (default "1 2 3"), DATASETS (default: the 11 datasets), METHODS (default
#   "zsclip coop cocoop maple promptsrc promptkd"; ivlp also available), TRAIN_TEACHERS=1, TEACHER_ROOT,
#   TEACHER_SEED, SMOKE=1, DRY_RUN=1, FORCE=1, OUTPUT_ROOT (see scripts/common.sh).
# Output: the runs (reference folders) and OUTPUT_ROOT/tables/table1_base2new/results_base2novel.{md,json},
#   hm_base2novel.png
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
table_setup
DATASETS="${DATASETS:-$BASE2NEW_DATASETS}"
METHODS="${METHODS:-zsclip coop cocoop maple promptsrc promptkd}"

RESULT_DIRS=("$OUTPUT_ROOT/base2new/train_base")
for d in $DATASETS; do dataset_config "$d" >/dev/null; done
for d in $DATASETS; do
    for m in $METHODS; do
        cfg="$(cfg_for "$m" b2n)"
        case "$m" in
            zsclip)
                CFG="$cfg" run_script zsclip/base2new_test.sh "$d" "$(first_seed)" ;;
            promptkd)
                ensure_teacher base2novel "$d"
                ckpt="$(teacher_ckpt base2novel "$d")"
                for s in $(seed_list); do
                    CFG="$cfg" TEACHER_CKPT="$ckpt" run_script promptkd/base2new_train.sh "$d" "$s"
                done ;;
            coop | cocoop | maple | promptsrc | ivlp)
                for s in $(seed_list); do
                    CFG="$cfg" run_script "$m/base2new_train.sh" "$d" "$s"
                done ;;
            *) die "unknown method '$m'; choose from: zsclip coop cocoop maple promptsrc ivlp promptkd" ;;
        esac
    done
done
[[ " $METHODS " == *" zsclip "* ]] && RESULT_DIRS+=("$OUTPUT_ROOT/base2new/zeroshot")
[[ " $METHODS " == *" promptkd "* && "$TRAIN_TEACHERS" == 1 ]] && RESULT_DIRS+=("$OUTPUT_ROOT/teachers/base2new")
results_table base2novel table1_base2new "${RESULT_DIRS[@]}"
