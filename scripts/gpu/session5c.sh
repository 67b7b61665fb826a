#!/usr/bin/env bash
# Device call 3 of session 5 (one GPU, carry [".whl", ".gpu/autotune_cache.tgz", ".gpu/COMMIT"], ~10 min):
# 1. preflight (fresh process): the fused Mamba2 block against the layer-by-layer path, and a checkpointed
#    train step from the first step, eager and graphed. A failure switches that path off for the benchmark
#    (and is printed), so it costs its rows, not the run.
# 2. the full benchmark, every peer (BIOT, CBraMod, LUNA, Labram, EEGPT, EEGNet) and SAMBA in one run, with the
#    autotune choices of calls 1-2 unpacked into the Triton cache first (SAMBA's first row then compiles one
#    config per kernel instead of autotuning for ~160 s; the configs are the ones the autotuner picked).
set -u
source scripts/gpu/env.sh
use_autotune_cache  # scripts/gpu/env.sh: unpack .gpu/autotune_cache.tgz into the Triton cache
t0=$(date +%s)
timeout 120 python3 scripts/gpu/preflight.py > $OUT/preflight.log 2>&1
echo "preflight rc $? in $(( $(date +%s) - t0 )) s"; grep -v Warn $OUT/preflight.log | tail -8 | cut -c1-300
grep -q FUSED_OK $OUT/preflight.log || { export SAMBA_FUSED_MAMBA=0; echo "FALLBACK: SAMBA_FUSED_MAMBA=0"; }
grep -q CKPT_OK $OUT/preflight.log || { export SAMBA_BENCH_CHECKPOINT_FROM_S=1e9; echo "FALLBACK: no checkpointing"; }
BUDGET_S=${BUDGET_S:-360} TOTAL_S=${TOTAL_S:-420} bash scripts/gpu/bench.sh
