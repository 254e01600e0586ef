#!/usr/bin/env bash
# KgCoOp (Yao et al., CVPR 2023), base-to-novel, as a plug-in: the trainer is examples/plugins/kgcoop.py,
# loaded through PROMPTKD_PLUGINS (train.py imports it before building the trainer); nothing of the
# package is edited. Trains on SHOTS-shot data of the BASE classes of DATASET; the run then evaluates
# base and novel test classes with its final checkpoint (results.json: base_acc, novel_acc, hm).
# Usage:  bash scripts/kgcoop/base2new_train.sh DATASET SEED [KEY VALUE ...]
# Config: examples/plugins/configs/KgCoOp/vit_b16_ep100_ctxv1.yaml (CFG=tiny_smoke for a CPU smoke run)
# Output: OUTPUT_ROOT/base2new/train_base/DATASET/shots_SHOTS/KgCoOp/CFG/seedSEED.
# Environment: DATA, CFG, SHOTS (default 16), RUN_DIR, OUTPUT_ROOT, DRY_RUN=1, FORCE=1 (scripts/common.sh),
#   W (lambda, the weight of the knowledge-guided loss; default 8.0 as in the paper), NCTX (default 4).
# Trailing KEY VALUE pairs are passed to train.py as config opts.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
PROMPTKD_PLUGINS="examples/plugins/kgcoop.py${PROMPTKD_PLUGINS:+:$PROMPTKD_PLUGINS}"
TRAINER_CONFIG_DIR="${TRAINER_CONFIG_DIR:-examples/plugins/configs}"
export PROMPTKD_PLUGINS TRAINER_CONFIG_DIR
W="${W:-8.0}"
NCTX="${NCTX:-4}"
METHOD_OPTS=(TRAINER.KGCOOP.W "$W" TRAINER.KGCOOP.N_CTX "$NCTX")
baseline_run b2n_train KgCoOp vit_b16_ep100_ctxv1 "$@"
