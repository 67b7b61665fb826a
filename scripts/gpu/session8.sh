#!/usr/bin/env bash
# Session 8's device calls (one GPU; carry [".whl", ".gpu/autotune_cache.tgz", ".gpu/COMMIT"]).
#   PART=a bash scripts/gpu/session8.sh   (~9 min): is the scan's split backward at 4 warps right on this GPU
#     (measured 18-21 % faster at batch 64-128 in session 7, opt-in until its CUDA tests and the preflight pass
#     at those settings), and where does the train step spend its time now:
#     1. the CUDA tests that run the scan backward (the kernel, the fused block, the grouped differential Mamba, Mamba2);
#     2. the preflight (whole model, every gradient, our path vs mamba_ssm's) into /tmp/preflight.log;
#     3. scripts/gpu/profile_step.py at batch 64 / 128 x 60 s: kernels, torch ops with their shapes, call sites.
#   All parts at SAMBA_TRITON_SCAN_BWD=split SAMBA_TRITON_SCAN_BWD_LAUNCH=4,3 unless the caller sets them.
set -u
t0=$(date +%s)
source scripts/gpu/env.sh
use_autotune_cache
since() { echo "$(( $(date +%s) - t0 )) s"; }
export SAMBA_TRITON_SCAN_BWD=${SAMBA_TRITON_SCAN_BWD:-split} SAMBA_TRITON_SCAN_BWD_LAUNCH=${SAMBA_TRITON_SCAN_BWD_LAUNCH:-4,3}
echo "scan backward $SAMBA_TRITON_SCAN_BWD $SAMBA_TRITON_SCAN_BWD_LAUNCH"
if [ "${PART:-a}" = a ]; then
  for k in "triton_scan_kernel_matches and split" "samba-enc and triton-triton" "diff_mamba_on_the_triton and 0" \
           "test_triton_scan_matches_torch and (0 or 5)" "inference_equals and 1"; do
    echo "[$k] at $(since): $(gpu_pytest gpu_tests.log ${TEST_S:-55} tests/test_gpu_backends.py -k "$k")"
  done
  rm -f /tmp/preflight.log
  timeout 150 python3 scripts/gpu/preflight.py --parts fast ckpt > /tmp/preflight.log 2>&1
  echo "preflight rc $? at $(since)"
  cp /tmp/preflight.log $OUT/preflight.log
  grep -v Warn $OUT/preflight.log | grep -E "fast path|FAST_OK|CKPT_OK|Error" | cut -c1-700
  timeout ${PROFILE_S:-110} python3 scripts/gpu/profile_step.py --backend mamba_ssm --seconds 60 --batches 64 128 \
    --modes train --stacks --out $OUT/profile > $OUT/profile.log 2>&1
  echo "profile rc $? at $(since)"; grep -v Warn $OUT/profile.log | tail -4 | cut -c1-300
fi
#   PART=b bash scripts/gpu/session8.sh   (~7 min): the train step's kernel settings (scripts/gpu/sweep_settings.py:
#     conv backward tiles and warps, gated-norm backward tiles and warps, the scan's backward and its warps for the
#     narrow heads; eager, batch 128 x 60 s, one process), then at the winners the CUDA tests of
#     those kernels and the preflight. Winners that pass both go to /tmp/best_env, and the preflight's log to /tmp/preflight.log, for
#     the benchmark on the same warm machine right after:
#       source /tmp/best_env; PART=b CALL_S=... bash scripts/gpu/session7.sh
if [ "${PART:-a}" = b ]; then
  timeout ${SWEEP_S:-200} python3 scripts/gpu/sweep_settings.py --out $OUT/sweep --families ${SWEEP_FAMILIES:-scan norm conv} > $OUT/sweep.log 2>&1
  echo "sweep rc $? at $(since)"
  grep '^{' $OUT/sweep.log | python3 -c "
import sys, json
for r in map(json.loads, sys.stdin):
    print(r['name'], ' '.join(f'{k[12:]}={v}' for k, v in r['env'].items()), r.get('ms'), r.get('grad_rel_diff'), r.get('error', ''))"
  grep -E "^winners|Error" $OUT/sweep.log | head -5 | cut -c1-400
  : > /tmp/best_env
  if [ -s $OUT/sweep/best_env ]; then
    ( source $OUT/sweep/best_env
      gpu_pytest gpu_tests_best.log ${TEST_S:-120} tests/test_gpu_backends.py tests/test_fast_ops.py -k "${BEST_TESTS_K:-(causal_conv1d and cuda) or \
gated_norm or (samba-enc and triton-triton) or (diff_mamba_on_the_triton and 0) or \
(triton_scan_kernel_matches and (split or group)) or narrow or (upsample_concat and cuda)}" )
    grep -q FAILED $OUT/gpu_tests_best.log || [ "$(grep -c PASSED $OUT/gpu_tests_best.log)" -lt ${MIN_PASSED:-10} ] || \
      cp $OUT/sweep/best_env /tmp/best_env
  fi
  echo "kept for the benchmark ($(since)):"; cat /tmp/best_env
  ( source /tmp/best_env; rm -f /tmp/preflight.log
    timeout 150 python3 scripts/gpu/preflight.py --parts fast ckpt > /tmp/preflight.log 2>&1; echo "preflight rc $?" )
  cp /tmp/preflight.log $OUT/preflight.log
  grep -v Warn $OUT/preflight.log | grep -E "fast path|FAST_OK|CKPT_OK|Error" | cut -c1-400
  echo "done at $(since)"
fi
#   PART=c bash scripts/gpu/session8.sh   (~7 min; CALL_S, default 450): in_proj's rows padded to a multiple of 16
#     values on the fused path (samba.nn.mamba_fused.aligned_in_proj: vectorised conv and norm access at the
#     1064-wide enc1/dec2 blocks):
#     1. the CUDA tests of the fused block (against mamba_ssm's layer-by-layer path, every parameter gradient),
#        the conv, the gated norm and whole-model inference; nothing below runs if one fails;
#     2. the train step's time and kernel table, batch 128 x 60 s (scripts/gpu/profile_step.py);
#     3. the benchmark: SAMBA's latency and context sweeps, then the throughput sweep with SAMBA, BIOT (the best
#        peer in every earlier run) and EEGNet (MODELS=...), the two JSONs to merge with samba bench --merge.
if [ "${PART:-a}" = c ]; then
  gpu_pytest gpu_tests_c.log ${TEST_S:-130} tests/test_gpu_backends.py tests/test_fast_ops.py -k \
    "(fused_mamba2_block_matches_layer_by_layer and (triton-triton or samba-enc)) or (causal_conv1d and cuda) or gated_norm or (inference_equals and 1)"
  # Stop on a failure, or if not even the fused block's samba-enc tests (the 1,064-wide rows) came through; a
  # cold compile cache lets ~6 tests finish in 130 s (session 8, call 5, which stopped here at a threshold of 10).
  if grep -q FAILED $OUT/gpu_tests_c.log || [ "$(grep -c 'samba-enc.*PASSED' $OUT/gpu_tests_c.log)" -lt 4 ]; then
    echo "tests not passed: no benchmark"; exit 1
  fi
  timeout 60 python3 scripts/gpu/profile_step.py --backend mamba_ssm --seconds 60 --batches 128 --modes train \
    --out $OUT/profile > $OUT/profile.log 2>&1
  echo "profile rc $? at $(since): $(grep '"ms"' $OUT/profile.log | cut -c1-200)"
  call_s=${CALL_S:-450}
  bench_part() {  # bench_part <sweeps> <models or ""> <name> <seconds for this part>
    OUT=$OUT/$3 BUDGET_S=$(( $4 - 40 )) TOTAL_S=$4 EXTRA_ARGS="--sweeps $1${2:+ --models $2}" \
      bash scripts/gpu/bench.sh 2>&1 | grep -v Warn | tail -3
    [ -f $OUT/$3/bench_h100.json ] && mv $OUT/$3/bench_h100.json $OUT/$3/bench.json  # named for any card
    echo "$3 done at $(since)"
  }
  bench_part latency,context SAMBA samba_latency_context 90
  bench_part throughput "${MODELS:-SAMBA,BIOT,EEGNet}" throughput $(( call_s - $(date +%s) + t0 - 10 ))
fi
