#!/usr/bin/env bash
# Paper Table 9 (supplementary; domain generalisation, source ImageNet, targets ImageNet-V2/-Sketch/-A/-R):
# the ImageNet-trained baselines (shared with Table 2) evaluated on each variant; zero-shot CLIP;
# PromptKD distilled from the ImageNet teacher on each unlabeled variant (transductive). Then
# tools/results.py --table dg.
#
# Usage:  bash scripts/tables/table9_domain_generalization.sh
# Environment: as table2_cross_dataset.sh; DATASETS default "imagenetv2 imagenet_sketch imagenet_a
#   imagenet_r".
# Output: OUTPUT_ROOT/tables/table_dg/results_dg.{md,json}, hm_dg.png
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
xd_table dg "$DG_TARGETS"
