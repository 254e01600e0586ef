# shellcheck shell=bash
# Helpers of the paper-table scripts (scripts/tables/*.sh); sourced by scripts/common.sh, which defines
# everything used here (the config maps, the run helpers and the output folders).

# ------------------------------------------------------------------------------------------------------
# Table scripts (scripts/tables/*.sh)
#   SMOKE=1           tiny configs (SMOKE_CFG), one seed, one epoch, teachers trained on the fly, output in
#                     OUTPUT_ROOT (default output/smoke); DATA must point at a generated data root.
#   SEEDS             seeds (default "1 2 3"; SMOKE: "1")
#   DATASETS          datasets (table-specific default; SMOKE: "dtd")
#   TRAIN_TEACHERS=1  train PromptKD's teachers with scripts/promptsrc/train_teacher.sh (seed TEACHER_SEED,
#                     default 1) instead of using released ones under TEACHER_ROOT (default teacher_model,
#                     reference layout <DATASET.NAME>/VLPromptLearner/model-best.pth.tar and
#                     ImageNet-xd/VLPromptLearner_large/model.pth.tar-20). SMOKE implies TRAIN_TEACHERS=1.
#   LAUNCHER          serial | local | slurm: hand the table to tools/sweep.py (parallel, resumable; options
#                     for it in SWEEP_ARGS, e.g. SWEEP_ARGS="--per-gpu 2"); see docs/SWEEPS.md.
# ------------------------------------------------------------------------------------------------------
table_setup() {
    if [[ -n "${LAUNCHER:-}" && -z "${SWEEP_PLAN:-}" ]]; then  # the sweep runner (tools/sweep.py) takes over
        # shellcheck disable=SC2086
        exec "$PYTHON" tools/sweep.py "$(basename "$0" .sh)" --launcher "$LAUNCHER" ${SWEEP_ARGS:-}
    fi
    SMOKE="${SMOKE:-0}"
    if [[ "$SMOKE" == 1 ]]; then
        if [[ -z "$_DATA_GIVEN" && "$DRY_RUN" != 1 ]]; then
            die "SMOKE=1 needs DATA=<root of a generated dataset tree> (the tiny run reads real files)"
        fi
        if [[ "$OUTPUT_ROOT" == output ]]; then
            OUTPUT_ROOT=output/smoke
        fi
        SEEDS="${SEEDS:-1}"
        DATASETS="${DATASETS:-dtd}"
        TRAIN_TEACHERS=1
    fi
    SEEDS="${SEEDS:-1 2 3}"
    TRAIN_TEACHERS="${TRAIN_TEACHERS:-0}"
    TEACHER_SEED="${TEACHER_SEED:-1}"
    TEACHER_ROOT="${TEACHER_ROOT:-teacher_model}"
    export OUTPUT_ROOT SEEDS
    [[ "$TEACHER_SEED" =~ ^[0-9]+$ ]] || die "TEACHER_SEED must be an integer, got '$TEACHER_SEED'"
    seed_list >/dev/null
}

# cfg_for METHOD PROTOCOL(b2n|xd) -> config stem used by the table scripts
cfg_for() {
    local method="$1" protocol="$2"
    [[ -n "${TRAINER_OF[$method]+x}" ]] || die "unknown method '$method'; expected one of: ${!TRAINER_OF[*]}"
    if [[ "${SMOKE:-0}" == 1 && "$protocol" == xd && -n "${SMOKE_XD_CFG[$method]+x}" ]]; then
        echo "${SMOKE_XD_CFG[$method]}"
    elif [[ "${SMOKE:-0}" == 1 ]]; then
        echo "${SMOKE_CFG[$method]}"
    elif [[ "$protocol" == xd ]]; then
        [[ -n "${XD_CFG[$method]+x}" ]] || die "method '$method' has no cross-dataset setting"
        echo "${XD_CFG[$method]}"
    else
        echo "${B2N_CFG[$method]}"
    fi
}

first_seed() {
    seed_list | head -n 1
}

# ensure_teacher PROTOCOL(base2novel|cross) DATASET [KEY VALUE ...]: with TRAIN_TEACHERS=1, trains the
# teacher (skipped when done). Then teacher_ckpt PROTOCOL DATASET prints the TRAINER.PROMPTKD.TEACHER_CKPT
# value to use (a checkpoint file or a run folder; the trainer takes its latest model.pth.tar-N).
ensure_teacher() {
    local protocol="$1" dataset="$2"
    if [[ "$TRAIN_TEACHERS" == 1 ]]; then
        CFG="$(cfg_for teacher "$protocol")" TEACHER_PROTOCOL="$protocol" \
            run_script promptsrc/train_teacher.sh "$dataset" "$TEACHER_SEED" "${@:3}"
    fi
}

teacher_ckpt() {
    local protocol="$1" dataset="$2" f
    if [[ "$TRAIN_TEACHERS" == 1 ]]; then
        # a run folder: the trainer picks its latest model.pth.tar-N
        teacher_dir "$protocol" "$dataset" "$(cfg_for teacher "$protocol")" "$TEACHER_SEED"
        return 0
    fi
    if [[ "$protocol" == cross ]]; then
        f="$TEACHER_ROOT/ImageNet-xd/VLPromptLearner_large/model.pth.tar-20"
    else
        f="$TEACHER_ROOT/$(dataset_name "$dataset")/VLPromptLearner"
    fi
    if [[ ! -e "$f" && "$DRY_RUN" != 1 ]]; then
        die "teacher checkpoint $f not found: put the released teachers under TEACHER_ROOT=$TEACHER_ROOT (reference layout) or set TRAIN_TEACHERS=1 to train them"
    fi
    echo "$f"
}

# existing_dirs DIR...: the arguments that exist (all of them with DRY_RUN=1)
existing_dirs() {
    local d
    for d in "$@"; do
        if [[ "$DRY_RUN" == 1 || -n "${SWEEP_PLAN:-}" || -d "$d" ]]; then
            echo "$d"
        fi
    done
}

# results_table KIND OUT_NAME DIR...: aggregate the given run folders with tools/results.py
results_table() {
    local kind="$1" name="$2" dirs=()
    shift 2
    mapfile -t dirs < <(existing_dirs "$@")
    if [[ ${#dirs[@]} -eq 0 ]]; then
        die "no run folder exists among: $*"
    fi
    run_cmd "$PYTHON" tools/results.py "${dirs[@]}" --table "$kind" --out "$OUTPUT_ROOT/tables/$name"
}

# xd_table KIND(cross|dg) DEFAULT_TARGETS: the cross-dataset / DG protocol for METHODS (paper Tables 2, 9).
# Baselines: SOURCE-trained model (xd_train.sh, shared by both tables) evaluated on every target; zero-shot
# CLIP: evaluated on every target; PromptKD: distilled on each target's unlabeled training images from the
# SOURCE teacher (transductive) and evaluated on it.
xd_table() {
    local kind="$1" default_targets="$2" m d s cfg trainer ckpt
    table_setup
    local targets="${DATASETS:-$default_targets}" source="${SOURCE:-imagenet}"
    [[ "$SMOKE" == 1 ]] && source="${SOURCE:-dtd}"
    local methods="${METHODS:-zsclip coop cocoop maple promptsrc promptkd}"
    local result_dirs=()
    for d in $source $targets; do dataset_config "$d" >/dev/null; done
    for m in $methods; do
        cfg="$(cfg_for "$m" xd)"
        trainer="${TRAINER_OF[$m]}"
        case "$m" in
            zsclip)
                for d in $targets; do
                    CFG="$cfg" run_script zsclip/xd_test.sh "$d" "$(first_seed)"
                    result_dirs+=("$OUTPUT_ROOT/evaluation/$trainer/$cfg/$d")
                done ;;
            promptkd)
                ensure_teacher cross "$source"
                ckpt="$(teacher_ckpt cross "$source")"
                for d in $targets; do
                    for s in $(seed_list); do
                        CFG="$cfg" TEACHER_CKPT="$ckpt" run_script promptkd/xd_train.sh "$d" "$s"
                    done
                    result_dirs+=("$OUTPUT_ROOT/$d/$trainer/${cfg}_0shots")
                done ;;
            coop | cocoop | maple | promptsrc)
                for s in $(seed_list); do
                    CFG="$cfg" SOURCE="$source" run_script "$m/xd_train.sh" "$source" "$s"
                    for d in $targets; do
                        CFG="$cfg" SOURCE="$source" run_script "$m/xd_test.sh" "$d" "$s"
                    done
                done
                local sub=""
                [[ "$m" == coop ]] && sub="/$(coop_opts && echo "$DIR_SUB")"
                for d in $targets; do
                    result_dirs+=("$OUTPUT_ROOT/evaluation/$trainer/${cfg}_16shots$sub/$d")
                done ;;
            *) die "method '$m' has no cross-dataset protocol; choose from: zsclip coop cocoop maple promptsrc promptkd" ;;
        esac
    done
    results_table "$kind" "table_${kind}" "${result_dirs[@]}"
}

# student_key_sweep NAME KEY TABLE "DEFAULT_VALUES" "SMOKE_VALUES"
# One ablation of the PromptKD student: for each dataset of DATASETS (default imagenet), the stage-I teacher
# (trained when missing), then one student run per value of the yacs KEY (VALUES overrides the defaults) and
# seed, under OUTPUT_ROOT/ablations/NAME/<dataset>/<KEY leaf>_<value>/seed_<S>; ends with
# tools/results.py --table TABLE. IMAGES_PER_CLASS caps the unlabeled images per class.
student_key_sweep() {
    local name="$1" key="$2" table="$3" defaults="$4" smoke_defaults="$5"
    [[ "$SMOKE" == 1 ]] && defaults="$smoke_defaults"
    local values="${VALUES:-$defaults}"
    local datasets="${DATASETS:-imagenet}"
    local student_cfg="ablations/vit_b16_c2_ep20_batch8_4+4ctx_64img"
    [[ "$SMOKE" == 1 ]] && student_cfg="$(cfg_for promptkd b2n)"
    local extra=()
    [[ -n "${IMAGES_PER_CLASS:-}" ]] && extra=(DATASET.MAX_IMAGES_PER_CLASS "$IMAGES_PER_CLASS")
    local base="$OUTPUT_ROOT/ablations/$name" d v s ckpt
    for d in $datasets; do dataset_config "$d" >/dev/null; done
    for d in $datasets; do
        ensure_teacher base2novel "$d"
        ckpt="$(teacher_ckpt base2novel "$d")"
        for v in $values; do
            for s in $(seed_list); do
                RUN_DIR="$base/$d/${key##*.}_$v/seed_$s" CFG="$student_cfg" TEACHER_CKPT="$ckpt" \
                    run_script promptkd/base2new_train.sh "$d" "$s" "$key" "$v" "${extra[@]}"
            done
        done
    done
    run_cmd "$PYTHON" tools/results.py "$base" --table "$table" --out "$OUTPUT_ROOT/tables/$name"
}
