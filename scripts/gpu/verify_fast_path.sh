#!/usr/bin/env bash
# Is SAMBA's fast CUDA path (samba.nn.mamba2.FAST_PATH_SWITCHES: our fused Mamba2 block, Triton SSD scan and
# gated-norm backward) right on this GPU? One call (one GPU, carry [".whl", ".gpu/COMMIT"], ~7 min):
#  1. its CUDA tests, verbose (one line per test as it ends, so a cut run still says which passed), one Triton
#     config per kernel (SAMBA_TRITON_AUTOTUNE=single), IEEE float32 in Triton's dots;
#  2. the preflight: the whole model on all three against mamba_ssm's path, every gradient, worst eight printed.
# Both passing is what FAST_PATH_DEFAULT = "1" waits for (docs/performance_log.md, section 5).
set -u
t0=$(date +%s)
source scripts/gpu/env.sh
( export SAMBA_TRITON_AUTOTUNE=single TRITON_CACHE_DIR=/tmp/tc_single TRITON_F32_DEFAULT=ieee
  timeout ${TEST_S:-330} python3 -m pytest -v -p no:cacheprovider -o addopts="" tests/test_gpu_backends.py \
    tests/test_fast_ops.py -k "triton or fused or gated or matches_torch" > $OUT/gpu_tests.log 2>&1
  echo "pytest rc $? at $(( $(date +%s) - t0 )) s: $(grep -c PASSED $OUT/gpu_tests.log) passed," \
       "$(grep -c FAILED $OUT/gpu_tests.log) failed lines"
  grep -E "FAILED|^E  " $OUT/gpu_tests.log | head -20 )
timeout ${PREFLIGHT_S:-120} python3 scripts/gpu/preflight.py --parts fast ckpt > $OUT/preflight.log 2>&1
echo "preflight rc $? at $(( $(date +%s) - t0 )) s"
grep -v Warn $OUT/preflight.log | grep -E "fast path|FAST_OK|CKPT_OK|Error" | cut -c1-600
