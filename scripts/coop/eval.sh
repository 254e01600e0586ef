#!/usr/bin/env bash
# CoOp's own cross-dataset / domain generalisation evaluation, called as in the CoOp repository:
#     bash scripts/coop/eval.sh DATASET CFG
# Evaluates the ImageNet model of `scripts/coop/main.sh imagenet CFG end 16 16 False` (16 shots, 16 context
# tokens, shared context, class token at the end; epoch LOADEP, default 50 as the reference) on DATASET,
# seeds SEEDS (default "1 2 3"), through scripts/coop/xd_test.sh.
# Output: OUTPUT_ROOT/evaluation/CoOp/CFG_16shots/nctx16_cscFalse_ctpend/DATASET/seedSEED (as the reference).
# Environment: DATA, OUTPUT_ROOT, SEEDS, LOADEP, DRY_RUN=1, FORCE=1 (see scripts/common.sh).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
usage="$(basename "$0") DATASET CFG  (e.g. imagenetv2 vit_b16_ep50)"
[[ $# -eq 2 ]] || die "expected 2 arguments, got $#. Usage: $usage"
dataset_name "$1" >/dev/null
for seed in $(seed_list); do
    CFG="$2" SHOTS=16 NCTX=16 CSC=False CTP=end LOADEP="${LOADEP:-50}" SOURCE=imagenet \
        run_script coop/xd_test.sh "$1" "$seed"
done
