#!/usr/bin/env bash
# Device call 5 of session 4 (one GPU, carry [".whl", ".gpu/autotune_cache.tgz"]): the benchmark, cut to fit
# the ~400 s of device time this session had left: SAMBA against the three strongest peers of the full
# run (results/bench_h200_929fa4d.json: BIOT, CBraMod, LUNA lead every throughput column; Labram, EEGPT and
# EEGNet-as-floor were not re-run). The autotune choices of call 4 (JSON only) are unpacked into the Triton
# cache first, so SAMBA's first row compiles one config per kernel instead of autotuning (~160 s); the
# configs are the ones the autotuner picked on this GPU type, so timings are unaffected.
set -u
source scripts/gpu/env.sh
use_autotune_cache  # scripts/gpu/env.sh: unpack .gpu/autotune_cache.tgz into the Triton cache
BUDGET_S=${BUDGET_S:-250} TOTAL_S=${TOTAL_S:-310} EXTRA_ARGS="--models BIOT,CBraMod,LUNA,SAMBA" bash scripts/gpu/bench.sh
