#!/usr/bin/env bash
# Device call 1 of session 5 (one GPU, carry [".whl", ".gpu/autotune_cache.tgz"], ~6 min):
#  1. the CUDA tests of the fast ops, incl. the decoder's skip-join Triton kernel (never run on a GPU before);
#  2. a CUDA memory snapshot of the batch 4 x 600 s train step, with and without activation checkpointing
#     (what is alive at the peak: scripts/gpu/memory_snapshot.py);
#  3. the eager probe (train / infer at 60 s, batch 4 / 64 / 128) with the skip-join kernel off and on,
#     and the kernel tables with it on.
set -u
source scripts/gpu/env.sh
t0=$(date +%s)
mkdir -p /tmp/tc_full
[ -f .gpu/autotune_cache.tgz ] && tar xzf .gpu/autotune_cache.tgz -C /tmp/tc_full && \
  echo "autotune cache entries: $(find /tmp/tc_full -name '*.autotune.json' | wc -l)"
( export SAMBA_TRITON_AUTOTUNE=single TRITON_CACHE_DIR=/tmp/tc_single TRITON_F32_DEFAULT=ieee
  timeout 150 python3 -m pytest -v -rP -p no:cacheprovider -o addopts="" --durations=6 \
    tests/test_fast_ops.py > $OUT/gpu_tests.log 2>&1
  echo "pytest rc $? at $(( $(date +%s) - t0 )) s"; grep -E "passed|failed|^FAILED|^E  " $OUT/gpu_tests.log | head -20 )
export TRITON_CACHE_AUTOTUNING=1 TRITON_CACHE_DIR=/tmp/tc_full
for ck in 1 0; do
  timeout 120 python3 scripts/gpu/memory_snapshot.py --seconds 600 --batch 4 --checkpointing $ck --out $OUT/mem \
    2>&1 | grep -v Warn | head -12
  echo "snapshot ckpt=$ck done at $(( $(date +%s) - t0 )) s"
done
SAMBA_TRITON_UPCAT=0 timeout 100 python3 scripts/gpu/perf_probe.py --out $OUT/probe_upcat0 --big 64 --parts eager \
  2>&1 | grep -v Warn | tail -7
echo "probe upcat=0 done at $(( $(date +%s) - t0 )) s"
timeout 120 python3 scripts/gpu/perf_probe.py --out $OUT/probe_upcat1 --big 64 --parts eager profile \
  2>&1 | grep -v Warn | tail -9
echo "probe upcat=1 done at $(( $(date +%s) - t0 )) s"
(cd /tmp/tc_full && find . -name "*.autotune.json" | tar czf $OUT/autotune_cache.tgz -T -) ; ls -la $OUT
