#!/usr/bin/env bash
# Paper Table 7 (inference cost: GFLOPs and images/s of CoOp, CoCoOp, PromptSRC and the PromptKD student):
# runs tools/benchmark.py; all arguments are passed to it (see python tools/benchmark.py --help).
#
# Usage:  bash scripts/tables/table7_inference_cost.sh [benchmark.py arguments ...]
# Environment: PYTHON, DRY_RUN=1 (see scripts/common.sh). SMOKE=1 adds --smoke (tiny models, CPU).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
ARGS=("$@")
if [[ "${SMOKE:-0}" == 1 ]]; then
    ARGS=(--smoke "${ARGS[@]}")
fi
run_cmd "$PYTHON" tools/benchmark.py "${ARGS[@]}"
