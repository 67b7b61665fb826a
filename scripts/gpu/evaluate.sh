#!/usr/bin/env bash
# usage: [WORKERS=16] [RESUME=1] scripts/gpu/evaluate.sh CKPT [MINUTES]   (from the repository root)
# The full evaluation (4 tasks x 6 methods x 5 seeds on identical folds) and the pretraining evidence
# (masked L1 on held-out recordings vs zeros / interpolation / random init). Writes results/evaluation.json and
# results/pretraining.json, and copies them (plus the markdown table) into $OUT when it is set.
# The evaluation stops starting work at MINUTES; RESUME=1 keeps the units an earlier call of the same commit wrote
# to results/evaluation.json and runs the rest. Set SAMBA_COMMIT to the checkout's commit where the GPU machine's
# copy has no matching git history (the files record it).
set -euo pipefail
CKPT=${1:?usage: scripts/gpu/evaluate.sh CKPT [MINUTES]}
MINUTES=${2:-8}
export SAMBA_COMMIT=${SAMBA_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
python -m samba.evaluation.run --profile full --init "$CKPT" --seeds 5 --out results/evaluation.json \
    --max-minutes "$MINUTES" --device cuda --workers "${WORKERS:-16}" ${RESUME:+--resume}
python -m samba.evaluation.run --render results/evaluation.json > results/evaluation.md
SNAP=()
RUN_DIR=$(dirname "$CKPT")
if [ -d "$RUN_DIR/snapshots" ]; then SNAP=(--snapshots "$RUN_DIR"); fi
python -m samba.evaluation.reconstruction --model "$CKPT" --out results/pretraining.json --device cuda "${SNAP[@]}"
if [ -n "${OUT:-}" ]; then
    cp results/evaluation.json results/evaluation.md results/pretraining.json "$OUT"/
fi
