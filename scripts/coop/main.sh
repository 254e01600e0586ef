#!/usr/bin/env bash
# CoOp's own few-shot entry point, called as in the CoOp repository:
#     bash scripts/coop/main.sh DATASET CFG CTP NCTX SHOTS CSC
#   e.g. bash scripts/coop/main.sh caltech101 rn50_ep50 end 16 1 False
#   CTP   class token position (end, middle or front)   NCTX  number of context tokens
#   SHOTS shots per class (1, 2, 4, 8, 16)               CSC   class-specific context (True or False)
# Runs seeds SEEDS (default "1 2 3", the reference's loop) through scripts/coop/xd_train.sh: SHOTS-shot
# training on all classes of DATASET.
# Output: OUTPUT_ROOT/DATASET/CoOp/CFG_SHOTSshots/nctxNCTX_cscCSC_ctpCTP/seedSEED (as the reference).
# Environment: DATA, OUTPUT_ROOT, SEEDS, DRY_RUN=1, FORCE=1 (see scripts/common.sh).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
usage="$(basename "$0") DATASET CFG CTP NCTX SHOTS CSC  (e.g. caltech101 rn50_ep50 end 16 1 False)"
[[ $# -eq 6 ]] || die "expected 6 arguments, got $#. Usage: $usage"
dataset_name "$1" >/dev/null
[[ "$3" =~ ^(end|middle|front)$ ]] || die "CTP must be end, middle or front, got '$3'. Usage: $usage"
[[ "$4" =~ ^[0-9]+$ ]] || die "NCTX must be an integer, got '$4'. Usage: $usage"
[[ "$5" =~ ^-?[0-9]+$ ]] || die "SHOTS must be an integer, got '$5'. Usage: $usage"
[[ "$6" =~ ^(True|False)$ ]] || die "CSC must be True or False, got '$6'. Usage: $usage"
for seed in $(seed_list); do
    CFG="$2" CTP="$3" NCTX="$4" SHOTS="$5" CSC="$6" run_script coop/xd_train.sh "$1" "$seed"
done
