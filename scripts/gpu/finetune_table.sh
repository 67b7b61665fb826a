#!/usr/bin/env bash
# usage: CKPT=checkpoints/samba_pretrained.pt MINUTES=7 bash scripts/gpu/finetune_table.sh
#
# The full-profile fine-tuning table (all tasks x 5 methods x 3 seeds) on one GPU machine, in about ten minutes.
# The checkpoint must be in the working tree (copy pretrain_full.sh's samba_pretrained.pt to checkpoints/
# first); .whl/ and .gpu/ beside the checkout provide the wheels and the data pack (scripts/gpu/env.sh).
# Writes under $OUT: finetune.json (-> results/finetune.json), finetune.md (README table),
# spatial_weights.tar.gz (CDSE weights per epoch for every SAMBA run -> figures/), finetune.log.
# The time budget is shared equally among the runs still to do; rows are written as they finish.
set -uo pipefail  # no -e: env.sh tolerates missing optional pieces; failures show in the log
cd "$(dirname "$0")/../.."
# shared GPU environment (offline wheels, preprocessed-data pack, OUT, NCCL without NVLink multicast)
source scripts/gpu/env.sh
PY=python3
CKPT=${CKPT:-checkpoints/samba_pretrained.pt}
MINUTES=${MINUTES:-7}
SEEDS=${SEEDS:-"0 1 2"}
TASKS=${TASKS:-"eegmmidb-mi eyes-open-closed eegmat-workload muse-p300"}
if [ ! -f "$CKPT" ]; then
  echo "no pretrained checkpoint at $CKPT (run scripts/gpu/pretrain_full.sh and copy samba_pretrained.pt)" >&2
  exit 2
fi
$PY -m samba.train.results --profile full --pretrained "$CKPT" --tasks $TASKS --seeds $SEEDS \
  --max-minutes "$MINUTES" --out "$OUT/finetune.json" --markdown "$OUT/finetune.md" --runs-dir runs/finetune_full \
  2>&1 | tee "$OUT/finetune.log"
(cd runs/finetune_full && find . -name spatial_weights.npz -o -name result.json | tar -czf - -T -) \
  > "$OUT/spatial_weights.tar.gz"
cat "$OUT/finetune.md"
