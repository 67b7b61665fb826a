#!/usr/bin/env bash
# Device call 4 of session 4 (one GPU, carry [".whl"], ~8 min):
#  1. GPU tests with one Triton config per kernel (fast compile): backends (new bf16 criterion), Triton conv,
#     CUDA graphs; full-model backend check in true float32 (TRITON_F32_DEFAULT=ieee, no TF32 in torch);
#  2. one full-autotune process (perf_probe): eager step with the Triton conv, kernel tables, graphs, 600-s
#     memory with per-piece checkpointing. Its autotune choices come back as autotune_cache.tgz (JSON
#     only, a few kB) so the benchmark call can skip the ~160 s of autotuning.
set -u
source scripts/gpu/env.sh
t0=$(date +%s)
( export SAMBA_TRITON_AUTOTUNE=single TRITON_CACHE_DIR=/tmp/tc_single TRITON_F32_DEFAULT=ieee
  timeout 170 python3 -m pytest -v -rP -p no:cacheprovider -o addopts="" --durations=6 \
    tests/test_fast_ops.py tests/test_graphs.py tests/test_gpu_backends.py > $OUT/gpu_tests.log 2>&1
  echo "pytest rc $? at $(( $(date +%s) - t0 )) s"; grep -E "passed|failed|^FAILED|^E  " $OUT/gpu_tests.log | head -20
  timeout 60 python3 scripts/gpu/check_backends.py --out $OUT/backend_check.json 2>&1 | grep -v Warn | tail -3 )
echo "tests done at $(( $(date +%s) - t0 )) s"
left=$(( 520 - ($(date +%s) - t0) ))
TRITON_CACHE_AUTOTUNING=1 TRITON_CACHE_DIR=/tmp/tc_full timeout $left python3 scripts/gpu/perf_probe.py \
  --out $OUT/probe --big 64 --parts eager graphs memory profile 2>&1 | grep -v Warn | tail -16
echo "probe done at $(( $(date +%s) - t0 )) s"
(cd /tmp/tc_full && find . -name "*.autotune.json" | tar czf $OUT/autotune_cache.tgz -T -) ; ls -la $OUT/autotune_cache.tgz
tar czf $OUT/probe.tgz -C $OUT probe && rm -rf $OUT/probe; ls -la $OUT
