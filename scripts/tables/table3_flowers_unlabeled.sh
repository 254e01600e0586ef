#!/usr/bin/env bash
# Paper Table 3 (Flowers102, base-to-novel, methods using unlabeled data): the rows this harness implements -
# zero-shot CLIP, PromptSRC (16-shot base classes) and PromptKD (distilled on all unlabeled training
# images) - run with the Table 1 configs and output folders (runs are shared with table1_base2new.sh), then
# the table in the paper's layout; the published rows of methods not implemented here (CLIP-PR, UPL,
# LaFTer, FPL, IFPL, GRIP) are shown from the paper for reference (tools/results.py --table table3).
#
# Usage:  bash scripts/tables/table3_flowers_unlabeled.sh
# Environment: VALUES (methods; default "zsclip promptsrc promptkd"), DATASETS (default oxford_flowers;
#   SMOKE: dtd), SEEDS (default "1 2 3"; SMOKE: 1), TRAIN_TEACHERS=1, TEACHER_ROOT, TEACHER_SEED, SMOKE=1,
#   DRY_RUN=1, FORCE=1, DATA, OUTPUT_ROOT (see scripts/common.sh).
# Output: the Table 1 run folders and OUTPUT_ROOT/tables/table3_flowers_unlabeled/results_table3.{md,json}
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
table_setup
VALUES="${VALUES:-zsclip promptsrc promptkd}"
DATASETS="${DATASETS:-oxford_flowers}"

RESULT_DIRS=()
for d in $DATASETS; do dataset_config "$d" >/dev/null; done
for d in $DATASETS; do
    for m in $VALUES; do
        cfg="$(cfg_for "$m" b2n)"
        case "$m" in
            zsclip)
                CFG="$cfg" run_script zsclip/base2new_test.sh "$d" "$(first_seed)"
                RESULT_DIRS+=("$OUTPUT_ROOT/base2new/zeroshot/$d/ZeroshotCLIP/$cfg") ;;
            promptsrc)
                for s in $(seed_list); do
                    CFG="$cfg" run_script promptsrc/base2new_train.sh "$d" "$s"
                done
                RESULT_DIRS+=("$(dirname "$(b2n_dir train_base "$d" 16 PromptSRC "$cfg" seed1)")") ;;
            promptkd)
                ensure_teacher base2novel "$d"
                ckpt="$(teacher_ckpt base2novel "$d")"
                for s in $(seed_list); do
                    CFG="$cfg" TEACHER_CKPT="$ckpt" run_script promptkd/base2new_train.sh "$d" "$s"
                done
                RESULT_DIRS+=("$(dirname "$(b2n_dir train_base "$d" 0 PromptKD "$cfg" seed_1)")") ;;
            *) die "Table 3 runs the methods zsclip, promptsrc and promptkd; got '$m' (VALUES)" ;;
        esac
    done
done
run_cmd "$PYTHON" tools/results.py "${RESULT_DIRS[@]}" --table table3 --out "$OUTPUT_ROOT/tables/table3_flowers_unlabeled"
