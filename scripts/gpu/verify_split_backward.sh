#!/usr/bin/env bash
# Is the scan's split backward at 4 warps right on this GPU? (Measured faster in session 7, eager H200: train
# step batch 128 x 60 s 76.8 vs 94.1 ms; opt-in until this passes.) One call, one GPU, ~6 min; carry
# [".whl", ".gpu/autotune_cache.tgz", ".gpu/COMMIT"]. Every log goes to $OUT first, so a cut run still says what passed.
#  1. the CUDA tests that run the scan backward, at SAMBA_TRITON_SCAN_BWD=split SAMBA_TRITON_SCAN_BWD_LAUNCH=4,3:
#     the kernel against ssd_chunked, the fused block against mamba_ssm's path on every parameter gradient, the
#     grouped differential Mamba, Mamba2 against the torch backend; then inference without scan states;
#  2. the preflight (whole model, every gradient) at the same settings, left in /tmp/preflight.log.
# If both pass, the benchmark on the same warm machine, right after:
#   SAMBA_TRITON_SCAN_BWD=split SAMBA_TRITON_SCAN_BWD_LAUNCH=4,3 PART=b bash scripts/gpu/session7.sh
# and set BWD_LAUNCH_DEFAULT / _bwd_mode's default in samba/nn/triton_ssd.py.
set -u
t0=$(date +%s)
source scripts/gpu/env.sh
use_autotune_cache
export SAMBA_TRITON_SCAN_BWD=split SAMBA_TRITON_SCAN_BWD_LAUNCH=4,3
for k in "triton_scan_kernel_matches and split" "samba-enc and triton-triton" "diff_mamba_on_the_triton and 0" \
         "test_triton_scan_matches_torch and (0 or 5)" "inference_equals and 1"; do
  echo "[$k] at $(( $(date +%s) - t0 )) s: $(gpu_pytest gpu_tests.log ${TEST_S:-60} tests/test_gpu_backends.py -k "$k")"
done
rm -f /tmp/preflight.log
timeout 150 python3 scripts/gpu/preflight.py --parts fast ckpt > /tmp/preflight.log 2>&1
echo "preflight rc $? at $(( $(date +%s) - t0 )) s"
cp /tmp/preflight.log $OUT/preflight.log
grep -v Warn $OUT/preflight.log | grep -E "fast path|FAST_OK|CKPT_OK|Error" | cut -c1-700
