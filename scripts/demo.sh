#!/usr/bin/env bash
# The README's main job: the real PromptKD pipeline end to end on the offline proving ground, on a CPU,
# with no download. One command on a fresh machine:
#
#     bash scripts/demo.sh
#
# 1. installs the dependencies when they are missing (pip install -e .);
# 2. builds the proving ground (cached): the target-domain dataset in CoOp layout and the pre-trained
#    teacher and student tiny CLIPs (tools/build_proving_ground.py);
# 3. runs the pipeline for 3 seeds (python -m proving_ground.pipeline): stage I PromptSRCTeacher on 16-shot
#    base classes (+ class vectors), stage II PromptKD on the unlabeled target images, stage III
#    teacher-free evaluation, and the baselines (zero-shot CLIP of teacher and student, CoOp and PromptSRC on
#    the student), all base-to-novel with the project's trainers, configs and train.py;
# 4. prints the base/novel/HM table (tools/results.py) and the paper's claims checked on it, and the
#    total wall time.
#
# Environment (all optional):
#   PYTHON        interpreter (default: python)
#   PRESET        default | reduced (default: default)
#   SEEDS         training seeds (default: "1 2 3")
#   OUT           output folder (default: output/proving_ground_demo)
#   JOBS          runs side by side, one torch thread each (default: 2)
#   PROMPTKD_PG_DIR  proving-ground cache root (default: ./output/proving_ground)
# Exit status: 0 when everything ran (a claim that does not hold is reported, not an error), non-zero on
# errors (missing dependencies that cannot be installed, a failed run).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

PYTHON="${PYTHON:-python}"
PRESET="${PRESET:-default}"
SEEDS="${SEEDS:-1 2 3}"
OUT="${OUT:-output/proving_ground_demo}"
JOBS="${JOBS:-2}"

start=$(date +%s)
say() { printf '\n== %s\n' "$*"; }

command -v "$PYTHON" >/dev/null 2>&1 || { echo "error: '$PYTHON' not found; install Python >= 3.9 or set PYTHON=" >&2; exit 2; }

say "1/3 dependencies"
# the imports of requirements.txt (scipy is used by two dataset readers only, not by the demo)
DEPS_CHECK='import open_clip, yacs, torchvision, yaml, matplotlib, tensorboard, tqdm, numpy, PIL'
if "$PYTHON" -c "$DEPS_CHECK" >/dev/null 2>&1; then
    echo "torch, torchvision, open_clip, yacs, PyYAML, matplotlib, tensorboard, tqdm, numpy, Pillow: present"
else
    echo "missing dependencies: running pip install -e . (torch, torchvision, open_clip_torch, yacs, ...)"
    "$PYTHON" -m pip install -e .
    "$PYTHON" -c "$DEPS_CHECK" \
        || { echo "error: dependencies still missing after pip install -e .; see the pip output above" >&2; exit 2; }
fi

say "2/3 proving ground: target dataset + pre-trained teacher and student CLIPs (cached after the first run)"
mkdir -p "$OUT"
"$PYTHON" tools/build_proving_ground.py --preset "$PRESET" --workers 2 --json "$OUT/build.json"
built=$(date +%s)

say "3/3 PromptKD pipeline: seeds $SEEDS, $JOBS runs side by side"
# shellcheck disable=SC2086  # SEEDS is a list of numbers
"$PYTHON" -m proving_ground.pipeline --build-json "$OUT/build.json" --seeds $SEEDS --out "$OUT" \
    --jobs "$JOBS" --threads 1 --force  # --force: runs of an older world/config in $OUT are stale: redo them

end=$(date +%s)
printf '\nTotal wall time: %d s (proving ground %d s, pipeline %d s) on %s CPU core(s), load average now: %s\n' \
    "$((end - start))" "$((built - start))" "$((end - built))" "$(nproc 2>/dev/null || echo '?')" \
    "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
