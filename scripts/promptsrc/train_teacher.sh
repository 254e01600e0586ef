#!/usr/bin/env bash
# PromptKD stage I: train the ViT-L/14 teacher with PromptSRC (trainer PromptSRCTeacher, config
# configs/trainers/PromptSRC/vit_l14_c2_ep20_batch8_4+4ctx.yaml).
#   TEACHER_PROTOCOL=base2novel (default): 16-shot BASE classes of DATASET; the run evaluates base and novel
#       classes (paper Table 10). One teacher per dataset for scripts/promptkd/base2new_train.sh.
#   TEACHER_PROTOCOL=cross: 16-shot, all classes, DATASET normally imagenet (paper Table 11); the teacher
#       of scripts/promptkd/xd_train.sh (reference name: ImageNet-xd).
# Point a student at the result with TEACHER_CKPT=<run dir>/<ModelName>/model.pth.tar-<epoch>.
#
# Usage:  bash scripts/promptsrc/train_teacher.sh DATASET SEED [KEY VALUE ...]
# Environment: DATA (default ./data), TEACHER_PROTOCOL, TEACHER_TRAINER (default PromptSRCTeacher), CFG,
#   SHOTS (default 16), RUN_DIR, OUTPUT_ROOT, DRY_RUN=1, FORCE=1 (see scripts/common.sh).
# Output: OUTPUT_ROOT/teachers/base2new/DATASET/shots_16/PromptSRCTeacher/CFG/seedSEED, or with
#   TEACHER_PROTOCOL=cross OUTPUT_ROOT/teachers/xd/DATASET/PromptSRCTeacher/CFG_16shots/seedSEED
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
require_dataset_seed "$(basename "$0") DATASET SEED [KEY VALUE ...]" "$@"

TRAINER="${TEACHER_TRAINER:-PromptSRCTeacher}"
DATASET=$1
SEED=$2
CFG="${CFG:-${B2N_CFG[teacher]}}"
SHOTS="${SHOTS:-16}"
PROTOCOL="${TEACHER_PROTOCOL:-base2novel}"

DATASET_CFG="$(dataset_config "$DATASET")"
TRAINER_CFG="$(trainer_config PromptSRC "$CFG")"
case "$PROTOCOL" in
    base2novel) PROTOCOL_OPTS=(DATASET.SUBSAMPLE_CLASSES base DATASET.EVAL_PROTOCOL base2novel) ;;
    cross) PROTOCOL_OPTS=(DATASET.SUBSAMPLE_CLASSES all DATASET.EVAL_PROTOCOL subsample) ;;
    *) die "TEACHER_PROTOCOL must be base2novel or cross, got '$PROTOCOL'" ;;
esac
DIR="${RUN_DIR:-$(teacher_dir "$PROTOCOL" "$DATASET" "$CFG" "$SEED")}"

run_job "$DIR" "$TRAINER" "$DATASET_CFG" "$TRAINER_CFG" "$SEED" "train a $PROTOCOL teacher; output in $DIR" \
    DATASET.NUM_SHOTS "$SHOTS" \
    "${PROTOCOL_OPTS[@]}" \
    "${@:3}"
