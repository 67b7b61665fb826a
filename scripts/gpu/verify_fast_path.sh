#!/usr/bin/env bash
# Is SAMBA's fast CUDA path (samba.nn.mamba2.FAST_PATH_SWITCHES: our fused Mamba2 block, Triton SSD scan and
# gated-norm backward) right on this GPU, and which scan backward is faster? One call (one GPU, ~9 min; carry
# [".whl", ".gpu/autotune_cache.tgz", ".gpu/COMMIT"]):
#  1. its CUDA tests, verbose (one line per test as it ends, so a cut run still says which passed), one Triton
#     config per kernel (SAMBA_TRITON_AUTOTUNE=single), IEEE float32 in Triton's dots;
#  2. the preflight: the whole model on all three against mamba_ssm's path, every gradient, worst eight printed;
#  3. the eager probe (train and infer, batch 4 / 64 / 128 x 60 s) of all three on, with the scan's walking
#     backward and with its split backward (SAMBA_TRITON_SCAN_BWD=split; written after session 6's device time).
# 1 and 2 passing is what FAST_PATH_DEFAULT = "1" waits for (docs/performance_log.md, section 5).
set -u
t0=$(date +%s)
source scripts/gpu/env.sh
( export SAMBA_TRITON_AUTOTUNE=single TRITON_CACHE_DIR=/tmp/tc_single TRITON_F32_DEFAULT=ieee
  # CUDA tests only (the interpreter and compile-only tests run in CI; in session 6's call they came first in
  # file order and used up the time)
  timeout ${TEST_S:-300} python3 -m pytest -v -p no:cacheprovider -o addopts="" tests/test_gpu_backends.py \
    tests/test_fast_ops.py -k "(triton or fused or gated or matches_torch or cuda) and not interpreter and not hopper" \
    > $OUT/gpu_tests.log 2>&1
  echo "pytest rc $? at $(( $(date +%s) - t0 )) s: $(grep -c PASSED $OUT/gpu_tests.log) passed," \
       "$(grep -c FAILED $OUT/gpu_tests.log) failed lines"
  grep -E "FAILED|^E  " $OUT/gpu_tests.log | head -20 )
timeout ${PREFLIGHT_S:-120} python3 scripts/gpu/preflight.py --parts fast ckpt > $OUT/preflight.log 2>&1
echo "preflight rc $? at $(( $(date +%s) - t0 )) s"
grep -v Warn $OUT/preflight.log | grep -E "fast path|FAST_OK|CKPT_OK|Error" | cut -c1-600
use_autotune_cache  # mamba_ssm's in_proj-side kernels and our conv: one config each, as chosen before
for bwd in walk split; do
  SAMBA_FUSED_MAMBA=1 SAMBA_TRITON_SCAN=1 SAMBA_TRITON_NORM=1 SAMBA_TRITON_SCAN_BWD=$bwd timeout 90 \
    python3 scripts/gpu/perf_probe.py --out $OUT/probe_fast_$bwd --big 64 --parts eager 2>&1 | grep -v Warn \
    | grep '"eager"\|Error' | cut -c1-220
  echo "probe fast path, $bwd backward, done at $(( $(date +%s) - t0 )) s"
done
