#!/usr/bin/env bash
# Device call 3 of session 5 (one GPU, carry [".whl", ".gpu/autotune_cache.tgz", ".gpu/COMMIT"], ~9.5 min):
# the full benchmark, every peer (BIOT, CBraMod, LUNA, Labram, EEGPT, EEGNet) and SAMBA in one run, with the
# autotune choices of calls 1-2 unpacked into the Triton cache first (SAMBA's first row then compiles one
# config per kernel instead of autotuning for ~160 s; the configs are the ones the autotuner picked).
set -u
source scripts/gpu/env.sh
mkdir -p /tmp/tc_full
[ -f .gpu/autotune_cache.tgz ] && tar xzf .gpu/autotune_cache.tgz -C /tmp/tc_full && \
  echo "autotune cache entries: $(find /tmp/tc_full -name '*.autotune.json' | wc -l)"
export TRITON_CACHE_AUTOTUNING=1 TRITON_CACHE_DIR=/tmp/tc_full
BUDGET_S=${BUDGET_S:-430} TOTAL_S=${TOTAL_S:-500} bash scripts/gpu/bench.sh
