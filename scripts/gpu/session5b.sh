#!/usr/bin/env bash
# Device call 2 of session 5 (one GPU, carry [".whl", ".gpu/autotune_cache.tgz", ".gpu/COMMIT"], ~7 min):
#  1. a small checkpointed train step first (call 1's 600-s checkpointed snapshot crashed in backward; the
#     full traceback is written to $OUT/mem/*_error.txt);
#  2. GPU tests of the new paths (fused Mamba2 block, Triton gated norm) and the backends, CUDA graphs;
#  3. memory snapshots of the batch 4 x 600 s train step (checkpointing on / off) with the fused block and
#     the bottleneck's scan chunk at 64;
#  4. the eager probe with everything new, and with the fused block and Triton norm switched off; on a card
#     other than call 1's H100 also the call-1 configuration (bottleneck chunk 256) as the baseline.
set -u
source scripts/gpu/env.sh
t0=$(date +%s)
mkdir -p /tmp/tc_full $OUT/mem
[ -f .gpu/autotune_cache.tgz ] && tar xzf .gpu/autotune_cache.tgz -C /tmp/tc_full && \
  echo "autotune cache entries: $(find /tmp/tc_full -name '*.autotune.json' | wc -l)"
export TRITON_CACHE_AUTOTUNING=1 TRITON_CACHE_DIR=/tmp/tc_full
for fused in 0 1; do
  SAMBA_FUSED_MAMBA=$fused timeout 100 python3 scripts/gpu/memory_snapshot.py --seconds 10 --batch 2 \
    --checkpointing 1 --out $OUT/mem_small_fused$fused > $OUT/small_ckpt_fused$fused.log 2>&1
  echo "small checkpointed step (fused=$fused) rc $? at $(( $(date +%s) - t0 )) s"; tail -4 $OUT/small_ckpt_fused$fused.log | cut -c1-400
done
( export SAMBA_TRITON_AUTOTUNE=single TRITON_CACHE_DIR=/tmp/tc_single TRITON_F32_DEFAULT=ieee
  timeout 170 python3 -m pytest -v -rP -p no:cacheprovider -o addopts="" --durations=6 \
    tests/test_gpu_backends.py tests/test_graphs.py > $OUT/gpu_tests.log 2>&1
  echo "pytest rc $? at $(( $(date +%s) - t0 )) s"; grep -E "passed|failed|^FAILED|^E  " $OUT/gpu_tests.log | head -20 )
for ck in 1 0; do
  timeout 100 python3 scripts/gpu/memory_snapshot.py --seconds 600 --batch 4 --checkpointing $ck --out $OUT/mem \
    > $OUT/mem_ckpt$ck.log 2>&1
  echo "snapshot ckpt=$ck rc $? at $(( $(date +%s) - t0 )) s"; head -4 $OUT/mem_ckpt$ck.log | cut -c1-300; tail -2 $OUT/mem_ckpt$ck.log | cut -c1-300
done
timeout 130 python3 scripts/gpu/perf_probe.py --out $OUT/probe_new --big 64 --parts eager profile memory \
  2>&1 | grep -v Warn | tail -11
echo "probe new done at $(( $(date +%s) - t0 )) s"
SAMBA_FUSED_MAMBA=0 SAMBA_TRITON_NORM=0 timeout 90 python3 scripts/gpu/perf_probe.py --out $OUT/probe_unfused \
  --big 64 --parts eager 2>&1 | grep -v Warn | tail -6
echo "probe unfused done at $(( $(date +%s) - t0 )) s"
if ! nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H100; then
  SAMBA_FUSED_MAMBA=0 SAMBA_TRITON_NORM=0 timeout 90 python3 scripts/gpu/perf_probe.py --out $OUT/probe_call1 \
    --big 64 --parts eager --config '{"diff_chunk_size": 256}' 2>&1 | grep -v Warn | tail -6
  echo "probe call-1 config done at $(( $(date +%s) - t0 )) s"
fi
(cd /tmp/tc_full && find . -name "*.autotune.json" | tar czf $OUT/autotune_cache.tgz -T -) ; ls -la $OUT
