#!/usr/bin/env bash
# Device call 4 of session 5 (one GPU, ~3 min, the last of the session's device time): the numbers the
# benchmark of call 3 could not give. Its preflight ran out of time autotuning float32 shapes, so the
# benchmark fell back to the layer-by-layer block without checkpointing, and its peak memory of graphed rows
# missed the graph's private pool. Here, eagerly (perf_probe): the default path (fused block, mamba_ssm's
# norm backward) at 60 s and the batch 4 x 600 s step with and without checkpointing; then the layer-by-layer
# path at 60 s on the same card.
set -u
source scripts/gpu/env.sh
use_autotune_cache  # scripts/gpu/env.sh: unpack .gpu/autotune_cache.tgz into the Triton cache
t0=$(date +%s)
timeout 100 python3 scripts/gpu/perf_probe.py --out $OUT/probe_fused --big 64 --parts memory eager 2>&1 | grep -v Warn | tail -9
echo "fused done at $(( $(date +%s) - t0 )) s"
SAMBA_FUSED_MAMBA=0 timeout 70 python3 scripts/gpu/perf_probe.py --out $OUT/probe_unfused --big 64 --parts eager 2>&1 | grep -v Warn | tail -7
echo "unfused done at $(( $(date +%s) - t0 )) s"
