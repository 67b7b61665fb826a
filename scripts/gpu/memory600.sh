#!/usr/bin/env bash
# The 10-minute-context memory target, eagerly (one GPU, carry [".whl", ".gpu/autotune_cache.tgz"], ~3 min):
# batch 4 x 600 s train step without checkpointing, with one checkpoint per block, and with one per sample
# (SAMBAConfig.checkpoint_piece_tokens), for the default layer-by-layer path and the opt-in fused Mamba2 block.
# bf16 only (float32 shapes would autotune anew); the first process compiles every kernel (~60-90 s).
set -u
source scripts/gpu/env.sh
use_autotune_cache
t0=$(date +%s)
for fused in 0 1; do
  SAMBA_FUSED_MAMBA=$fused timeout 150 python3 scripts/gpu/perf_probe.py --out $OUT/probe_mem_fused$fused \
    --parts memory 2>&1 | grep -v Warn | tail -4
  echo "fused=$fused done at $(( $(date +%s) - t0 )) s"
done
