#!/usr/bin/env bash
# PromptKD student, cross-dataset / domain generalisation (paper Tables 2 and 9): the ImageNet-trained
# ViT-L/14 teacher ("ImageNet-xd") distils into a ViT-B/16 student on the unlabeled training images of
# the TARGET dataset (transductive), then the student is evaluated on the target's test split.
#
# Usage:  bash scripts/promptkd/xd_train.sh DATASET SEED [KEY VALUE ...]
#   DATASET  target: caltech101 oxford_pets stanford_cars oxford_flowers food101 fgvc_aircraft sun397 dtd
#            eurosat ucf101 (Table 2) or imagenetv2 imagenet_sketch imagenet_a imagenet_r (Table 9)
# Environment: DATA (default ./data), TEACHER_CKPT (the cross-dataset teacher checkpoint, e.g. the released
#   teacher_model/ImageNet-xd/VLPromptLearner_large/model.pth.tar-20 or
#   TEACHER_PROTOCOL=cross scripts/promptsrc/train_teacher.sh imagenet 1), CLASS_VECTORS, CFG, RUN_DIR,
#   OUTPUT_ROOT, DRY_RUN=1, FORCE=1 (see scripts/common.sh).
# Output: OUTPUT_ROOT/DATASET/PromptKD/CFG_0shots/seedSEED (as the reference).
# KD_WEIGHT: 1000 for every target (set in the cross-dataset trainer yaml, as the reference's script).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
promptkd_run xd_train "$@"
