#!/usr/bin/env bash
# Device call 3 of session 4 (one GPU, carry [".whl"]): correctness first, all with one Triton config per
# kernel (SAMBA_TRITON_AUTOTUNE=single: seconds to compile, not minutes; never used for timings):
#  1. issue #2: full-model mamba_ssm vs torch backends on the same weights (check_backends.py);
#  2. the GPU tests (backends, CUDA graphs vs eager, fast ops);
#  3. CUDA-graph capture of inference and train steps, and the 600-s memory with/without checkpointing.
set -u
source scripts/gpu/env.sh
export SAMBA_TRITON_AUTOTUNE=single TRITON_CACHE_DIR=/tmp/tc_single
t0=$(date +%s)
timeout 120 python3 scripts/gpu/check_backends.py --out $OUT/backend_check.json 2>&1 | grep -v Warn | tail -4
echo "check_backends done at $(( $(date +%s) - t0 )) s"
TRITON_F32_DEFAULT=ieee timeout 240 python3 -m pytest -v -rP -p no:cacheprovider -o addopts="" --durations=8 \
  tests/test_gpu_backends.py tests/test_graphs.py tests/test_fast_ops.py > $OUT/gpu_tests.log 2>&1
echo "pytest rc $? at $(( $(date +%s) - t0 )) s"; grep -E "passed|failed|GPU-TOL|^FAILED|^E " $OUT/gpu_tests.log | head -60
left=$(( 530 - ($(date +%s) - t0) ))
timeout $left python3 scripts/gpu/perf_probe.py --out $OUT/probe --big 32 --parts graphs memory 2>&1 | grep -v Warn | tail -12
echo "probe done at $(( $(date +%s) - t0 )) s"
tar czf $OUT/probe.tgz -C $OUT probe && rm -rf $OUT/probe; ls -la $OUT
