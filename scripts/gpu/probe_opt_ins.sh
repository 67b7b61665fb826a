#!/usr/bin/env bash
# The opt-in fast paths written after session 5's device time ran out, measured against the default in one
# call (one GPU, carry [".whl", ".gpu/autotune_cache.tgz", ".gpu/COMMIT"], ~9 min; the most wanted rows first):
#  1. their CUDA tests (one Triton config per kernel): the Triton SSD scan (SAMBA_TRITON_SCAN=1), the fused
#     block with both norm backwards, the gated norm;
#  2. the eager probe at 60 s (batch 4 / 64 / 128, train and infer) for the default, SAMBA_TRITON_SCAN=1,
#     SAMBA_FUSED_MAMBA=1 SAMBA_TRITON_NORM=1 (its norm backward now at 4 x 512 tiles, which ptxas says do not
#     spill), and that fused block on our scan too (every kernel of the block ours), with the kernel tables;
#  3. the 600-s memory rows (no checkpointing / per block / per sample) for the default and the fused block.
set -u
source scripts/gpu/env.sh
use_autotune_cache
t0=$(date +%s)
( export SAMBA_TRITON_AUTOTUNE=single TRITON_CACHE_DIR=/tmp/tc_single TRITON_F32_DEFAULT=ieee
  timeout 150 python3 -m pytest -q -rP -p no:cacheprovider -o addopts="" tests/test_fast_ops.py \
    tests/test_gpu_backends.py -k "triton or fused or gated" > $OUT/gpu_tests.log 2>&1
  echo "pytest rc $? at $(( $(date +%s) - t0 )) s"; grep -E "passed|failed|^FAILED|^E  " $OUT/gpu_tests.log | head -20 )
probe() {  # name, parts, then environment assignments
  local name=$1 parts=$2; shift 2
  env "$@" timeout 110 python3 scripts/gpu/perf_probe.py --out $OUT/probe_$name --big 64 --parts $parts \
    2>&1 | grep -v Warn | grep '"eager"\|Error' | cut -c1-220
  echo "probe $name done at $(( $(date +%s) - t0 )) s"
}
memory() {  # the 600-s rows; SAMBA_FUSED_MAMBA value
  SAMBA_FUSED_MAMBA=$1 timeout 100 python3 scripts/gpu/perf_probe.py --out $OUT/mem_fused$1 --parts memory \
    2>&1 | grep -v Warn | grep 'memory600\|Error' | cut -c1-220
  echo "memory fused=$1 done at $(( $(date +%s) - t0 )) s"
}
# most wanted first: the default and our scan, the default's 600-s peaks (checkpointing confirmed on the GPU)
probe default eager SAMBA_FUSED_MAMBA=0
probe triton_scan "eager profile" SAMBA_TRITON_SCAN=1
memory 0
probe fused_scan "eager profile" SAMBA_FUSED_MAMBA=1 SAMBA_TRITON_NORM=1 SAMBA_TRITON_SCAN=1
probe fused eager SAMBA_FUSED_MAMBA=1 SAMBA_TRITON_NORM=1
memory 1
echo "all done at $(( $(date +%s) - t0 )) s"
