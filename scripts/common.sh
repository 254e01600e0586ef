# shellcheck shell=bash
# Helpers shared by every script under scripts/ (sourced, never executed on its own).
#
# Environment variables understood by all scripts (all optional):
#   DATA         dataset root passed as --root (DATASET.ROOT); default ./data. Relative paths are taken
#                from the directory you run the script from.
#   OUTPUT_ROOT  folder that receives the run folders; default "output" (relative to the repository
#                root, as in the reference scripts).
#   PYTHON       interpreter; default "python".
#   DRY_RUN=1    print each command (shell-quoted, one line) instead of running it.
#   FORCE=1      run again even when <run dir>/DONE already exists (default: skip finished runs;
#                an unfinished run resumes from its last checkpoint).
#   CFG          trainer config name (file stem under configs/trainers/<TRAINER>/) replacing a script's
#                default, e.g. CFG=tiny_smoke.
#   RUN_DIR      output folder replacing a script's default run folder (used by the ablation scripts).
#   LOADEP       checkpoint epoch loaded by the *_test.sh scripts; default: OPTIM.MAX_EPOCH of the config.
# Your own data (DATASETS.md, "Custom datasets"): pass the dataset `custom` (configs/datasets/custom.yaml) or
# the path of a dataset yaml of yours (DATASET.NAME ImageFolderCustom) where a script takes DATASET, and set:
#   CUSTOM_ROOT        the dataset folder (DATASET.ROOT); default: DATA
#   CUSTOM_CSV         CSV mode: the path,label[,split] file, relative to CUSTOM_ROOT (DATASET.CUSTOM.CSV);
#                      unset: folder mode (<CUSTOM_ROOT>/images/<class>/<image>)
#   CUSTOM_CLASSNAMES  class-name file (DATASET.CUSTOM.CLASSNAMES_FILE); needed in CSV mode
#   CUSTOM_TEMPLATE    prompt template, e.g. "a photo of a {}, a type of garment." (DATASET.CUSTOM.TEMPLATE)
#   CUSTOM_NAME        the dataset's name in results, tables and run folders (DATASET.CUSTOM.NAME); default:
#                      the name of the CUSTOM_ROOT folder (`custom`) or the yaml's file stem (a yaml path)
#   PROMPTKD_PLUGINS  plug-ins train.py imports (':'-separated .py files, package folders or module
#                names; docs/PLUGINS.md); relative paths are taken from the directory you run the script from.
#   TRAINER_CONFIG_DIR  folder holding <TRAINER>/<CFG>.yaml; default configs/trainers (plug-ins keep theirs
#                elsewhere, e.g. examples/plugins/configs).
# GPUs: nothing here sets CUDA_VISIBLE_DEVICES; choose the device(s) in your shell.
# The table scripts' variables (SMOKE, SEEDS, DATASETS, TRAIN_TEACHERS, LAUNCHER, ...): scripts/lib/tables.sh.

set -euo pipefail

_CALLER_PWD="$PWD"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

_DATA_GIVEN="${DATA:+1}"
DATA="${DATA:-./data}"
if [[ "$DATA" != /* && "$_CALLER_PWD" != "$REPO_ROOT" ]]; then
    DATA="$_CALLER_PWD/$DATA"  # keep the user's relative path meaning after the cd above
fi
if [[ -n "${CUSTOM_ROOT:-}" && "$CUSTOM_ROOT" != /* ]]; then
    CUSTOM_ROOT="$_CALLER_PWD/$CUSTOM_ROOT"
fi
# plug-in paths keep the user's relative meaning too (module names and absolute paths stay as they are)
if [[ -n "${PROMPTKD_PLUGINS:-}" && "$_CALLER_PWD" != "$REPO_ROOT" ]]; then
    _plugins=()
    IFS=':' read -r -a _plugin_specs <<< "$PROMPTKD_PLUGINS"
    for _p in "${_plugin_specs[@]}"; do
        if [[ -n "$_p" && "$_p" != /* && ( "$_p" == */* || "$_p" == *.py || -e "$_CALLER_PWD/$_p" ) ]]; then
            _p="$_CALLER_PWD/$_p"
        fi
        _plugins+=("$_p")
    done
    PROMPTKD_PLUGINS="$(IFS=':'; echo "${_plugins[*]}")"
    export PROMPTKD_PLUGINS
fi
OUTPUT_ROOT="${OUTPUT_ROOT:-output}"
PYTHON="${PYTHON:-python}"
DRY_RUN="${DRY_RUN:-0}"
FORCE="${FORCE:-0}"
export DATA OUTPUT_ROOT PYTHON DRY_RUN FORCE

# The 15 datasets: short name (configs/datasets/<short>.yaml) -> DATASET.NAME.
declare -A DATASET_NAMES=(
    [imagenet]=ImageNet [caltech101]=Caltech101 [oxford_pets]=OxfordPets [stanford_cars]=StanfordCars
    [oxford_flowers]=OxfordFlowers [food101]=Food101 [fgvc_aircraft]=FGVCAircraft [sun397]=SUN397
    [dtd]=DescribableTextures [eurosat]=EuroSAT [ucf101]=UCF101 [imagenetv2]=ImageNetV2
    [imagenet_sketch]=ImageNetSketch [imagenet_a]=ImageNetA [imagenet_r]=ImageNetR
    [custom]=ImageFolderCustom
)
# Which trainer config reproduces which paper row (single source for the per-method and table scripts;
# configs/README.md explains the choices). Keys: method folder under scripts/.
declare -A TRAINER_OF=(
    [promptkd]=PromptKD [promptsrc]=PromptSRC [ivlp]=IVLP [maple]=MaPLe [cocoop]=CoCoOp [coop]=CoOp
    [zsclip]=ZeroshotCLIP [teacher]=PromptSRC
)
declare -A B2N_CFG=(  # base-to-novel (Table 1; teacher: Table 10)
    [promptkd]="vit_b16_c2_ep20_batch8_4+4ctx" [promptsrc]="vit_b16_c2_ep20_batch4_4+4ctx"
    [ivlp]="vit_b16_c2_ep20_batch4_4+4ctx" [maple]="vit_b16_c2_ep5_batch4_2ctx"
    [cocoop]="vit_b16_c4_ep10_batch1_ctxv1" [coop]="vit_b16_ctxv1" [zsclip]="vit_b16"
    [teacher]="vit_l14_c2_ep20_batch8_4+4ctx"
)
declare -A XD_CFG=(  # cross-dataset and domain generalisation (Tables 2 and 9; teacher: Table 11)
    [promptkd]="vit_b16_c2_ep20_batch8_4+4ctx_cross_datasets"
    [promptsrc]="vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets"
    [maple]="vit_b16_c2_ep5_batch4_2ctx_cross_datasets" [cocoop]="vit_b16_c4_ep10_batch1_ctxv1"
    [coop]="vit_b16_ep50_ctxv1" [zsclip]="vit_b16" [teacher]="vit_l14_c2_ep20_batch8_4+4ctx"
)
# With SMOKE=1 the table scripts use these instead (tiny random-weight models, 32 px, 1 epoch);
# SMOKE_XD_CFG overrides SMOKE_CFG for the cross-dataset / DG protocol.
declare -A SMOKE_CFG=(
    [promptkd]=tiny_smoke [promptsrc]=tiny_smoke [ivlp]=tiny_smoke [maple]=tiny_smoke [cocoop]=tiny_smoke
    [coop]=tiny_smoke [zsclip]=tiny_smoke [teacher]=tiny_smoke_teacher
)
declare -A SMOKE_XD_CFG=(
    [promptkd]=tiny_smoke_cross_datasets
)

# Paper order (Table 1 / Table 2 / Table 9).
BASE2NEW_DATASETS="imagenet caltech101 oxford_pets stanford_cars oxford_flowers food101 fgvc_aircraft sun397 dtd eurosat ucf101"
XD_TARGETS="caltech101 oxford_pets stanford_cars oxford_flowers food101 fgvc_aircraft sun397 dtd eurosat ucf101"
DG_TARGETS="imagenetv2 imagenet_sketch imagenet_a imagenet_r"

known_datasets() {
    echo "$BASE2NEW_DATASETS $DG_TARGETS custom (your data; or the path of a dataset yaml)"
}

# is_dataset_yaml ARG: true when the DATASET argument is a yaml path (a custom dataset of yours)
is_dataset_yaml() {
    [[ "$1" == *.yaml || "$1" == *.yml ]]
}

# is_custom_config FILE: true for a dataset yaml of ImageFolderCustom (custom.yaml or one of yours)
is_custom_config() {
    [[ -f "$1" ]] && grep -Eq '^[[:space:]]*NAME:[[:space:]]*"?ImageFolderCustom"?' "$1"
}

# dataset_tag DATASET -> the dataset's folder name in run paths: the short name for a benchmark; CUSTOM_NAME,
# else the CUSTOM_ROOT (or DATA) folder name for `custom`; CUSTOM_NAME, else the file stem for a yaml path
dataset_tag() {
    if [[ "$1" == custom ]]; then
        local root="${CUSTOM_ROOT:-$DATA}"
        root="${root%/}"
        echo "${CUSTOM_NAME:-$(basename "$root")}"
    elif is_dataset_yaml "$1"; then
        local stem
        stem="$(basename "$1")"
        echo "${CUSTOM_NAME:-${stem%.*}}"
    else
        echo "$1"
    fi
}

die() {
    echo "error: $*" >&2
    exit 2
}

note() {
    echo "[$(basename "$0")] $*" >&2
}

# require_dataset_seed USAGE "$@": checks the two positional arguments DATASET SEED.
require_dataset_seed() {
    local usage="$1"
    shift
    if [[ $# -lt 2 ]]; then
        die "missing arguments. Usage: $usage"
    fi
    dataset_name "$1" >/dev/null
    [[ "$2" =~ ^[0-9]+$ ]] || die "SEED must be a non-negative integer, got '$2'. Usage: $usage"
}

# dataset_config SHORT -> configs/datasets/<SHORT>.yaml (checked)
dataset_config() {
    local short="$1"
    if is_dataset_yaml "$short"; then
        [[ -f "$short" || -f "$_CALLER_PWD/$short" ]] || die "dataset yaml $short not found"
        if [[ "$short" != /* && ! -f "$short" ]]; then short="$_CALLER_PWD/$short"; fi
        echo "$short"
        return 0
    fi
    if [[ -z "${DATASET_NAMES[$short]+x}" ]]; then
        die "unknown dataset '$short'; expected one of: $(known_datasets)"
    fi
    local f="configs/datasets/${short}.yaml"
    if [[ ! -f "$f" ]]; then
        if [[ "$DRY_RUN" == 1 ]]; then
            note "warning: $f does not exist"
        else
            die "$f not found: every dataset needs its yaml under configs/datasets/"
        fi
    fi
    echo "$f"
}

# dataset_name SHORT -> registry name (DescribableTextures for dtd)
dataset_name() {
    if is_dataset_yaml "$1"; then dataset_tag "$1"; return 0; fi
    [[ -n "${DATASET_NAMES[$1]+x}" ]] || die "unknown dataset '$1'; expected one of: $(known_datasets)"
    echo "${DATASET_NAMES[$1]}"
}

# trainer_config TRAINER CFG -> configs/trainers/<TRAINER>/<CFG>.yaml (checked)
trainer_config() {
    local dir="${TRAINER_CONFIG_DIR:-configs/trainers}"
    local f="$dir/$1/$2.yaml"
    [[ -f "$f" ]] || die "$f not found; available configs: $(cd "$dir/$1" 2>/dev/null && ls -- *.yaml | tr '\n' ' ')"
    echo "$f"
}

# cfg_max_epoch FILE -> OPTIM.MAX_EPOCH written in the yaml
cfg_max_epoch() {
    local ep
    ep="$(awk '/^[[:space:]]*MAX_EPOCH:/ {print $2; exit}' "$1")"
    [[ "$ep" =~ ^[0-9]+$ ]] || die "$1: no integer OPTIM.MAX_EPOCH found; set LOADEP=<epoch> explicitly"
    echo "$ep"
}

# seed_list: the SEEDS variable (default "1 2 3"), validated
seed_list() {
    local s
    for s in ${SEEDS:-1 2 3}; do
        [[ "$s" =~ ^[0-9]+$ ]] || die "SEEDS must hold integers, got '$s'"
        echo "$s"
    done
}

# run_cmd ARGS...: run (or print with DRY_RUN=1) one command. Under tools/sweep.py (SWEEP_PLAN=<file>)
# the command is appended to that file (argument count, then the arguments, NUL-separated) instead.
run_cmd() {
    if [[ -n "${SWEEP_PLAN:-}" ]]; then
        printf '%s\0' "$#" "$@" >>"$SWEEP_PLAN"
    elif [[ "$DRY_RUN" == 1 ]]; then
        printf '%q ' "$@"
        printf '\n'
    else
        "$@"
    fi
}

# train_py ARGS...: python train.py ARGS (or print)
train_py() {
    local extra=() custom=() a prev=""
    for a in "$@"; do  # a custom dataset: its root and DATASET.CUSTOM keys from the CUSTOM_* variables
        if [[ "$prev" == --dataset-config-file ]] && is_custom_config "$a"; then custom=(1); fi
        prev="$a"
    done
    if [[ ${#custom[@]} -gt 0 ]]; then
        local root="${CUSTOM_ROOT:-$DATA}"
        if [[ "$DRY_RUN" != 1 && ! -d "$root" ]]; then
            die "custom dataset folder CUSTOM_ROOT=$root does not exist; set CUSTOM_ROOT=<your dataset folder>"
        fi
        local args=()
        prev=""
        for a in "$@"; do  # --root is the dataset folder itself
            if [[ "$prev" == --root ]]; then args+=("$root"); else args+=("$a"); fi
            prev="$a"
        done
        set -- "${args[@]}"
        custom=()
        [[ -n "${CUSTOM_CSV:-}" ]] && custom+=(DATASET.CUSTOM.CSV "$CUSTOM_CSV")
        [[ -n "${CUSTOM_CLASSNAMES:-}" ]] && custom+=(DATASET.CUSTOM.CLASSNAMES_FILE "$CUSTOM_CLASSNAMES")
        [[ -n "${CUSTOM_TEMPLATE:-}" ]] && custom+=(DATASET.CUSTOM.TEMPLATE "$CUSTOM_TEMPLATE")
        [[ -n "${CUSTOM_NAME:-}" ]] && custom+=(DATASET.CUSTOM.NAME "$CUSTOM_NAME")
    elif [[ "$DRY_RUN" != 1 && ! -d "$DATA" ]]; then
        die "data root DATA=$DATA does not exist; set DATA=<folder holding the dataset folders (CoOp layout: dtd/, eurosat/, imagenet/, ...)>"
    fi
    [[ "$FORCE" == 1 ]] && extra+=(--overwrite)  # train.py refuses to redo a finished run otherwise
    if [[ "$DRY_RUN" == 1 && -n "${PROMPTKD_PLUGINS:-}" ]]; then
        note "with PROMPTKD_PLUGINS=$PROMPTKD_PLUGINS (train.py imports these plug-ins)"
    fi
    run_cmd "$PYTHON" train.py "${extra[@]}" "$@" ${custom[@]+"${custom[@]}"}
}

# run_job DIR TRAINER DATASET_CFG TRAINER_CFG SEED MESSAGE [ARGS ...]: unless DIR holds a finished run
# (already_done), note MESSAGE and run train.py on DIR with these configs, SEED (left out when empty) and ARGS
run_job() {
    local dir="$1" trainer="$2" dataset_cfg="$3" trainer_cfg="$4" seed="$5" message="$6"
    shift 6
    if already_done "$dir"; then return 0; fi
    note "$message"
    train_py --root "$DATA" ${seed:+--seed "$seed"} --trainer "$trainer" \
        --dataset-config-file "$dataset_cfg" --config-file "$trainer_cfg" --output-dir "$dir" "$@"
}

# already_done DIR: true (and a note) when DIR/DONE exists (written by train.py after results.json) and
# FORCE is not 1; a run killed between results.json and DONE is run again (it resumes)
already_done() {
    [[ -z "${SWEEP_PLAN:-}" ]] || return 1  # tools/sweep.py records every run and skips the finished ones itself
    if [[ "$FORCE" != 1 && -f "$1/DONE" ]]; then
        note "results are available in $1 (results.json); skipping this job (FORCE=1 runs it again)"
        return 0
    fi
    return 1
}

# Output folders (identical to the reference scripts).
#   b2n_dir PHASE DATASET SHOTS TRAINER CFG SEEDDIR -> OUTPUT_ROOT/base2new/PHASE/DATASET/shots_SHOTS/TRAINER/CFG/SEEDDIR
b2n_dir() {
    echo "$OUTPUT_ROOT/base2new/$1/$(dataset_tag "$2")/shots_$3/$4/$5/$6"
}
#   xd_dir DATASET TRAINER CFG SHOTS SEED [SUB] -> OUTPUT_ROOT/DATASET/TRAINER/CFG_SHOTSshots[/SUB]/seedSEED
xd_dir() {
    echo "$OUTPUT_ROOT/$(dataset_tag "$1")/$2/$3_$4shots${6:+/$6}/seed$5"
}
#   xd_eval_dir TRAINER CFG SHOTS DATASET SEED [SUB]
#       -> OUTPUT_ROOT/evaluation/TRAINER/CFG_SHOTSshots[/SUB]/DATASET/seedSEED
xd_eval_dir() {
    echo "$OUTPUT_ROOT/evaluation/$1/$2_$3shots${6:+/$6}/$(dataset_tag "$4")/seed$5"
}
#   teacher_dir PROTOCOL DATASET CFG SEED -> folder written by scripts/promptsrc/train_teacher.sh
teacher_dir() {
    if [[ "$1" == cross ]]; then
        echo "$OUTPUT_ROOT/teachers/xd/$(dataset_tag "$2")/PromptSRCTeacher/$3_16shots/seed$4"
    else
        echo "$OUTPUT_ROOT/teachers/base2new/$(dataset_tag "$2")/shots_16/PromptSRCTeacher/$3/seed$4"
    fi
}

# run_script SCRIPT ARGS...: run another script of this folder with the current environment
run_script() {
    bash "$REPO_ROOT/scripts/$1" "${@:2}"
}

# ------------------------------------------------------------------------------------------------------
# The four reference workflows of the prompt-learning baselines (CoOp, CoCoOp, IVLP, MaPLe, PromptSRC).
# A script sets METHOD_OPTS (extra trainer opts) and DIR_SUB (extra folder level, CoOp only) if needed,
# then calls baseline_run WORKFLOW TRAINER DEFAULT_CFG "$@" (its own DATASET SEED [KEY VALUE ...]).
# SHOTS (default 16) is the number of labeled shots per class. WORKFLOW:
#   b2n_train  base-to-novel training on the base classes. Unlike the reference, the run also evaluates the
#              novel classes with the same final checkpoint (DATASET.EVAL_PROTOCOL base2novel), so results.json
#              holds base_acc, novel_acc and hm; b2n_test still gives the reference's separate novel evaluation.
#   b2n_test   reference novel-class evaluation: --eval-only of the b2n_train checkpoint on the new classes.
#   xd_train   cross-dataset / DG source training: SHOTS-shot, all classes (DATASET is normally imagenet).
#   xd_test    cross-dataset / DG evaluation of the SOURCE (default imagenet) model on DATASET's test split.
# ------------------------------------------------------------------------------------------------------
METHOD_OPTS=()
DIR_SUB=""

baseline_run() {
    local workflow="$1" trainer="$2" default_cfg="$3" usage
    shift 3
    usage="$(basename "$0") DATASET SEED [KEY VALUE ...]"
    [[ "$workflow" == xd_train ]] && usage+="  (DATASET: normally imagenet)"
    require_dataset_seed "$usage" "$@"
    local dataset="$1" seed="$2" cfg="${CFG:-$default_cfg}" shots="${SHOTS:-16}"
    local dataset_cfg trainer_cfg dir model_dir="" target="" loadep message opts
    dataset_cfg="$(dataset_config "$dataset")"
    trainer_cfg="$(trainer_config "$trainer" "$cfg")"
    case "$workflow" in
        b2n_train)
            dir="${RUN_DIR:-$(b2n_dir train_base "$dataset" "$shots" "$trainer" "$cfg" "seed$seed")}"
            opts=(DATASET.NUM_SHOTS "$shots" DATASET.SUBSAMPLE_CLASSES base DATASET.EVAL_PROTOCOL base2novel) ;;
        b2n_test)
            model_dir="${MODEL_DIR:-$(b2n_dir train_base "$dataset" "$shots" "$trainer" "$cfg" "seed$seed")}"
            dir="${RUN_DIR:-$(b2n_dir test_new "$dataset" "$shots" "$trainer" "$cfg" "seed$seed")}"
            target="the novel classes"
            opts=(DATASET.NUM_SHOTS "$shots" DATASET.SUBSAMPLE_CLASSES new DATASET.EVAL_PROTOCOL subsample) ;;
        xd_train)
            dir="${RUN_DIR:-$(xd_dir "$dataset" "$trainer" "$cfg" "$shots" "$seed" "$DIR_SUB")}"
            opts=(DATASET.NUM_SHOTS "$shots" DATASET.SUBSAMPLE_CLASSES all DATASET.EVAL_PROTOCOL subsample) ;;
        xd_test)
            model_dir="${MODEL_DIR:-$(xd_dir "${SOURCE:-imagenet}" "$trainer" "$cfg" "$shots" "$seed" "$DIR_SUB")}"
            dir="${RUN_DIR:-$(xd_eval_dir "$trainer" "$cfg" "$shots" "$dataset" "$seed" "$DIR_SUB")}"
            target="$dataset"
            opts=(DATASET.SUBSAMPLE_CLASSES all DATASET.EVAL_PROTOCOL subsample) ;;
        *) die "baseline_run: unknown workflow '$workflow' (b2n_train, b2n_test, xd_train or xd_test)" ;;
    esac
    message="run this job and save the output to $dir"
    if [[ -n "$model_dir" ]]; then  # an evaluation of the trained run's checkpoint
        loadep="${LOADEP:-$(cfg_max_epoch "$trainer_cfg")}"
        message="evaluate $model_dir (epoch $loadep) on $target; output in $dir"
        opts=(--model-dir "$model_dir" --load-epoch "$loadep" --eval-only "${opts[@]}")
    fi
    run_job "$dir" "$trainer" "$dataset_cfg" "$trainer_cfg" "$seed" "$message" "${opts[@]}" "${METHOD_OPTS[@]}" "${@:3}"
}

# CoOp's prompt options: NCTX (default 4), CSC (False), CTP (end) as METHOD_OPTS, and the cross-dataset run
# folder level DIR_SUB they name
coop_opts() {
    NCTX="${NCTX:-4}"
    CSC="${CSC:-False}"
    CTP="${CTP:-end}"
    METHOD_OPTS=(TRAINER.COOP.N_CTX "$NCTX" TRAINER.COOP.CSC "$CSC" TRAINER.COOP.CLASS_TOKEN_POSITION "$CTP")
    DIR_SUB="nctx${NCTX}_csc${CSC}_ctp${CTP}"
}

# The PromptKD student (scripts/promptkd/*.sh): promptkd_run WORKFLOW "$@" (the script's DATASET SEED
# [KEY VALUE ...]), WORKFLOW b2n_train | b2n_test | xd_train | xd_test as above; 0 shots (the student learns
# from all unlabeled training images), protocol and shots in the trainer yaml. The teacher comes from the
# environment: TEACHER_CKPT (checkpoint file or teacher run folder -> TRAINER.PROMPTKD.TEACHER_CKPT) and
# CLASS_VECTORS (class-vector file -> TRAINER.PROMPTKD.CLASS_VECTORS). A cross-dataset student is trained
# and evaluated on DATASET itself.
promptkd_run() {
    local workflow="$1" trainer=PromptKD shots=0
    shift
    require_dataset_seed "$(basename "$0") DATASET SEED [KEY VALUE ...]" "$@"
    local dataset="$1" seed="$2" cfg dataset_cfg trainer_cfg dir model_dir="" target="" loadep message eval_opts=()
    local teacher_opts=()
    case "$workflow" in
        b2n_*) cfg="${CFG:-${B2N_CFG[promptkd]}}" ;;
        *) cfg="${CFG:-${XD_CFG[promptkd]}}" ;;
    esac
    dataset_cfg="$(dataset_config "$dataset")"
    trainer_cfg="$(trainer_config "$trainer" "$cfg")"
    case "$workflow" in
        b2n_train) dir="${RUN_DIR:-$(b2n_dir train_base "$dataset" "$shots" "$trainer" "$cfg" "seed_$seed")}" ;;
        b2n_test)
            model_dir="${MODEL_DIR:-$(b2n_dir train_base "$dataset" "$shots" "$trainer" "$cfg" "seed_$seed")}"
            dir="${RUN_DIR:-$(b2n_dir test_base2novel "$dataset" "$shots" "$trainer" "$cfg" "seed_$seed")}"
            target="base and novel classes" ;;
        xd_train) dir="${RUN_DIR:-$(xd_dir "$dataset" "$trainer" "$cfg" "$shots" "$seed")}" ;;
        xd_test)
            model_dir="${MODEL_DIR:-$(xd_dir "$dataset" "$trainer" "$cfg" "$shots" "$seed")}"
            dir="${RUN_DIR:-$(xd_eval_dir "$trainer" "$cfg" "$shots" "$dataset" "$seed")}"
            target="$dataset" ;;
        *) die "promptkd_run: unknown workflow '$workflow' (b2n_train, b2n_test, xd_train or xd_test)" ;;
    esac
    [[ -n "${TEACHER_CKPT:-}" ]] && teacher_opts+=(TRAINER.PROMPTKD.TEACHER_CKPT "$TEACHER_CKPT")
    [[ -n "${CLASS_VECTORS:-}" ]] && teacher_opts+=(TRAINER.PROMPTKD.CLASS_VECTORS "$CLASS_VECTORS")
    message="run this job and save the output to $dir"
    if [[ -n "$model_dir" ]]; then  # an evaluation of the trained student (the stored class vectors, no teacher)
        loadep="${LOADEP:-$(cfg_max_epoch "$trainer_cfg")}"
        message="evaluate $model_dir (epoch $loadep) on $target; output in $dir"
        eval_opts=(--model-dir "$model_dir" --load-epoch "$loadep" --eval-only)
    fi
    run_job "$dir" "$trainer" "$dataset_cfg" "$trainer_cfg" "$seed" "$message" "${eval_opts[@]}" \
        "${teacher_opts[@]}" "${@:3}"
}

# Zero-shot CLIP (scripts/zsclip/base2new_test.sh, xd_test.sh): zsclip_run b2n|xd "$@" (the script's DATASET
# SEED [KEY VALUE ...]) evaluates the base and novel classes (b2n) or all classes of DATASET's test split (xd).
zsclip_run() {
    local protocol="$1" trainer=ZeroshotCLIP
    shift
    require_dataset_seed "$(basename "$0") DATASET SEED [KEY VALUE ...]" "$@"
    local dataset="$1" seed="$2" cfg dataset_cfg trainer_cfg dir
    [[ "$protocol" == b2n ]] && cfg="${CFG:-${B2N_CFG[zsclip]}}" || cfg="${CFG:-${XD_CFG[zsclip]}}"
    dataset_cfg="$(dataset_config "$dataset")"
    trainer_cfg="$(trainer_config "$trainer" "$cfg")"
    if [[ "$protocol" == b2n ]]; then
        dir="${RUN_DIR:-$OUTPUT_ROOT/base2new/zeroshot/$(dataset_tag "$dataset")/$trainer/$cfg/seed$seed}"
        run_job "$dir" "$trainer" "$dataset_cfg" "$trainer_cfg" "$seed" \
            "evaluate zero-shot CLIP on base and novel classes; output in $dir" \
            --eval-only DATASET.SUBSAMPLE_CLASSES base DATASET.EVAL_PROTOCOL base2novel "${@:3}"
    else
        dir="${RUN_DIR:-$OUTPUT_ROOT/evaluation/$trainer/$cfg/$(dataset_tag "$dataset")/seed$seed}"
        run_job "$dir" "$trainer" "$dataset_cfg" "$trainer_cfg" "$seed" "evaluate zero-shot CLIP; output in $dir" \
            --eval-only DATASET.SUBSAMPLE_CLASSES all DATASET.EVAL_PROTOCOL subsample "${@:3}"
    fi
}

# The table scripts' helpers (table_setup, cfg_for, ensure_teacher, teacher_ckpt, results_table, xd_table,
# student_key_sweep)
# shellcheck source=scripts/lib/tables.sh
source "$REPO_ROOT/scripts/lib/tables.sh"
