#!/usr/bin/env bash
# usage: scripts/gpu/evaluate.sh CKPT [MINUTES]   (run from the repository root; SAMBA_DATA_MIRROR = the data)
# The full evaluation (4 tasks x 6 methods x 5 seeds on identical folds) and the pretraining evidence
# (masked L1 on held-out recordings vs zeros / interpolation / random init). Writes results/evaluation.json and
# results/pretraining.json, and copies them (plus the markdown table) into $OUT when it is set.
set -euo pipefail
CKPT=${1:?usage: scripts/gpu/evaluate.sh CKPT [MINUTES]}
MINUTES=${2:-8}
export SAMBA_COMMIT=${SAMBA_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
python -m samba.evaluation.run --profile full --init "$CKPT" --seeds 5 --out results/evaluation.json \
    --max-minutes "$MINUTES" --device cuda --workers "${WORKERS:-8}"
python -m samba.evaluation.run --render results/evaluation.json > results/evaluation.md
SNAP=()
RUN_DIR=$(dirname "$CKPT")
if [ -d "$RUN_DIR/snapshots" ]; then SNAP=(--snapshots "$RUN_DIR"); fi
python -m samba.evaluation.reconstruction --model "$CKPT" --out results/pretraining.json --device cuda "${SNAP[@]}"
if [ -n "${OUT:-}" ]; then
    cp results/evaluation.json results/evaluation.md results/pretraining.json "$OUT"/
fi
