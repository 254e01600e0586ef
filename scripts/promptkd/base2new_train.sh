#!/usr/bin/env bash
# PromptKD student, base-to-novel (paper Table 1): distil the dataset's PromptSRC ViT-L/14 teacher into a
# ViT-B/16 student on ALL unlabeled training images, then evaluate base and novel test classes with the
# final checkpoint (results.json: base_acc, novel_acc, hm).
#
# Usage:  bash scripts/promptkd/base2new_train.sh DATASET SEED [KEY VALUE ...]
#         e.g. bash scripts/promptkd/base2new_train.sh dtd 1
#   DATASET  short name: imagenet caltech101 oxford_pets stanford_cars oxford_flowers food101
#            fgvc_aircraft sun397 dtd eurosat ucf101
#   KEY VALUE  extra config overrides passed to train.py (e.g. TRAINER.PROMPTKD.TEMPERATURE 2.0)
# Environment: DATA (dataset root, default ./data), TEACHER_CKPT (teacher checkpoint file, e.g. the
#   released teacher_model/<Dataset>/VLPromptLearner/model-best.pth.tar or one trained with
#   scripts/promptsrc/train_teacher.sh), CLASS_VECTORS (class-vector file), CFG, RUN_DIR, OUTPUT_ROOT,
#   DRY_RUN=1, FORCE=1 (see scripts/common.sh).
# Hyper-parameters live in the yaml files: KD_WEIGHT comes from configs/datasets/<DATASET>.yaml (200 for
# fgvc_aircraft, oxford_flowers, dtd; trainer default 1000 otherwise), temperature, protocol and shots
# from configs/trainers/PromptKD/<CFG>.yaml.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
promptkd_run b2n_train "$@"
