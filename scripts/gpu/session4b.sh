#!/usr/bin/env bash
# Device call 2 of session 4 (one GPU, carry [".whl"]):
#  B. issue #2 equivalence with first-config Triton kernels (fast compile): check_backends + GPU tests;
#  A. one full-autotune process: eager profile of the mamba_ssm step, CUDA graphs, 600-s memory.
set -u
source scripts/gpu/env.sh
t0=$(date +%s)
SAMBA_TRITON_AUTOTUNE=first TRITON_CACHE_DIR=/tmp/tc_first timeout 100 python3 scripts/gpu/check_backends.py \
  --out $OUT/backend_check.json 2>&1 | tail -4
echo "check_backends done at $(( $(date +%s) - t0 )) s"
SAMBA_TRITON_AUTOTUNE=first TRITON_CACHE_DIR=/tmp/tc_first TRITON_F32_DEFAULT=ieee timeout 170 \
  python3 -m pytest -v -rP -p no:cacheprovider -o addopts="" --durations=8 \
  tests/test_gpu_backends.py tests/test_graphs.py tests/test_fast_ops.py > $OUT/gpu_tests.log 2>&1
echo "pytest rc $? at $(( $(date +%s) - t0 )) s"; grep -E "passed|failed|GPU-TOL" $OUT/gpu_tests.log | tail -40
left=$(( 540 - ($(date +%s) - t0) ))
SAMBA_TRITON_AUTOTUNE=full TRITON_CACHE_DIR=/tmp/tc_full TRITON_CACHE_AUTOTUNING=1 timeout $left \
  python3 scripts/gpu/perf_probe.py --out $OUT/probe --big 64 --parts eager graphs memory profile 2>&1 | grep -v Warning | tail -30
echo "probe done at $(( $(date +%s) - t0 )) s"
tar czf $OUT/probe.tgz -C $OUT probe && rm -rf $OUT/probe; ls -la $OUT
