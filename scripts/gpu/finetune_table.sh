#!/usr/bin/env bash
# Full-profile results table (all tasks x 5 methods x 3 seeds) on the GPU machine, one 10-minute call.
#
#   CKPT=checkpoints/samba_pretrained.pt MINUTES=7 bash scripts/gpu/finetune_table.sh
#
# Device call (the checkpoint must be in the working tree: copy pretrain_full.sh's samba_pretrained.pt
# to checkpoints/ first; carry ".whl" for the offline installs):
#   run(command="bash scripts/gpu/finetune_table.sh", carry=[".whl"], timeout_s=600)
# Returns under $OUT: finetune.json (-> results/finetune.json), finetune.md (README table),
# spatial_weights.tar.gz (CDSE weights per epoch for every SAMBA run -> figures/), finetune.log.
# The time budget is shared equally among the runs still to do; rows are written as they finish.
set -euo pipefail
# --- environment (offline installs, data mirror, $OUT); the same block is in both gpu scripts ---
cd "$(dirname "$0")/../.."
export OUT=${OUT:-runs/gpu_out}
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1 MPLBACKEND=Agg
PY=${PYTHON:-python3}
# The GPU image has torch but not mne/braindecode: install them from the carried wheel folder (.whl,
# filled by scripts/gpu/fetch_wheels.sh) without any registry.
if ! $PY -c "import mne, pooch" 2>/dev/null || ! $PY -c "import braindecode" 2>/dev/null; then
  if [ -d .whl ]; then
    $PY -m pip install -q --no-index --find-links .whl mne pooch braindecode skorch 2>&1 | tail -2 || true
  else
    echo "warning: mne/braindecode missing and no .whl folder carried (see scripts/gpu/fetch_wheels.sh)" >&2
  fi
fi
if [ -z "${SAMBA_DATA_MIRROR:-}" ]; then
  for c in shared/data ../shared/data /work/shared/data; do
    if [ -f "$c/SHA256SUMS" ]; then export SAMBA_DATA_MIRROR=$(cd "$c" && pwd); break; fi
  done
fi
export SAMBA_DATA_DIR=${SAMBA_DATA_DIR:-/tmp/samba_cache}
echo "mirror: ${SAMBA_DATA_MIRROR:-none}  out: $OUT" >&2
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.device_count(), 'GPU(s)', torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" >&2
# --- end environment ---
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
