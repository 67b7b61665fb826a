#!/usr/bin/env bash
# Session 9's last device call (one GPU; carry [".whl", ".gpu/autotune_cache.tgz", ".gpu/COMMIT"]), after the
# scan's group backward became the narrow heads' default (samba.nn.triton_ssd.NARROW_MODE_DEFAULT):
#   bash scripts/gpu/session9.sh   (~9 min):
#     1. every CUDA test (tests/test_gpu_backends.py, and tests/test_fast_ops.py's CUDA cases) at the new defaults,
#        no SAMBA_TRITON_* variable set, into $OUT/gpu_tests.log;
#     2. the train step's kernel and op tables, batch 128 x 60 s (scripts/gpu/profile_step.py), for
#        docs/performance_log.md.
# Session 9's first calls: PART=b bash scripts/gpu/session8.sh (the sweeps, SWEEP_FAMILIES="scan layout norm", then
# "scan"), then `source /tmp/best_env; PART=b CALL_S=575 bash scripts/gpu/session7.sh` (the benchmark).
set -u
t0=$(date +%s)
source scripts/gpu/env.sh
use_autotune_cache
since() { echo "$(( $(date +%s) - t0 )) s"; }
unset SAMBA_TRITON_SCAN_BWD SAMBA_TRITON_SCAN_BWD_LAUNCH SAMBA_TRITON_SCAN_BWD_NARROW SAMBA_TRITON_SCAN_BWD_NARROW_LAUNCH
echo "[all CUDA tests] at $(since): $(gpu_pytest gpu_tests.log ${TEST_S:-400} tests/test_gpu_backends.py \
  tests/test_fast_ops.py -k 'not interpreter and not hopper')"
timeout ${PROFILE_S:-80} python3 scripts/gpu/profile_step.py --backend mamba_ssm --seconds 60 --batches 128 \
  --modes train --out $OUT/profile > $OUT/profile.log 2>&1
echo "profile rc $? at $(since): $(grep '"ms"' $OUT/profile.log | cut -c1-200)"
