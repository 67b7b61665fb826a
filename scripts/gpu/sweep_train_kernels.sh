#!/usr/bin/env bash
# The train step's other Triton kernels, launch options and tiles (written in session 7 after its device time;
# session 7 found 19 % in the scan forward and 18 % in the scan backward from such options alone). One call,
# one GPU, ~8 min; carry [".whl", ".gpu/autotune_cache.tgz", ".gpu/COMMIT"]. The scan's settings come from the
# caller's environment (e.g. SAMBA_TRITON_SCAN_BWD=split SAMBA_TRITON_SCAN_BWD_LAUNCH=4,3 once verified).
#  1. eager train step, batch 4 / 64 / 128 x 60 s, for each variant below (ptxas spills per thread, sm_90,
#     offline: conv backward 64,64 at 4 warps 584 B, at 8 warps none; 128,32 at 8 warps none; 256,32 at 8 304 B);
#  2. the CUDA tests of the conv and the gated norm at the fastest variant of each (by >= 2 % at batch 128);
#  3. the 10-minute batch-4 train step (eager; no checkpointing, per block, one sample per piece) with our scan
#     everywhere and with SAMBA_TRITON_SCAN_MIN_PROGRAMS=64 (pieces of 8 programs take mamba_ssm's scan).
# Every log goes to $OUT first. A default changes only after step 2 passes (samba/nn/triton_conv.py,
# samba/nn/triton_norm.py: BWD_BLOCK_DEFAULT, BWD_LAUNCH_DEFAULT, BWD_TILE, BWD_ITERS).
set -u
t0=$(date +%s)
source scripts/gpu/env.sh
use_autotune_cache
since() { echo "$(( $(date +%s) - t0 )) s"; }
probe() {  # probe <name> <env assignments...>: b128 ms on stdout's last line
  env "${@:2}" timeout 45 python3 scripts/gpu/perf_probe.py --out $OUT/$1 --big 64 --parts eager --modes train \
    > $OUT/$1.log 2>&1
  echo "$1: $(probe_rows $OUT/$1.log) at $(since)" >&2
  python3 -c "import json;r=[x for x in json.load(open('$OUT/$1/perf_probe.json'))['rows'] if x.get('batch')==128];print(r[0]['ms'] if r else 1e9)" 2>/dev/null || echo 1e9
}
faster() { python3 -c "import sys; sys.exit(not $1 < 0.98 * $2)"; }
base=$(probe default)
best_conv=""; best_conv_ms=$base
for v in "64,64:8,3" "128,32:8,3" "256,32:8,3"; do
  ms=$(probe conv_${v//[:,]/_} SAMBA_TRITON_CONV_BWD_BLOCK=${v%%:*} SAMBA_TRITON_CONV_BWD_LAUNCH=${v#*:})
  faster $ms $best_conv_ms && { best_conv=$v; best_conv_ms=$ms; }
done
best_norm=""; best_norm_ms=$base
for v in "2048,8:8,3" "2048,16:4,3"; do
  ms=$(probe norm_${v//[:,]/_} SAMBA_TRITON_NORM_BWD=${v%%:*} SAMBA_TRITON_NORM_BWD_LAUNCH=${v#*:})
  faster $ms $best_norm_ms && { best_norm=$v; best_norm_ms=$ms; }
done
echo "default $base ms; conv backward ${best_conv:-default} $best_conv_ms ms; norm backward ${best_norm:-default} $best_norm_ms ms"
if [ -n "$best_conv$best_norm" ]; then
  ( [ -n "$best_conv" ] && export SAMBA_TRITON_CONV_BWD_BLOCK=${best_conv%%:*} SAMBA_TRITON_CONV_BWD_LAUNCH=${best_conv#*:}
    [ -n "$best_norm" ] && export SAMBA_TRITON_NORM_BWD=${best_norm%%:*} SAMBA_TRITON_NORM_BWD_LAUNCH=${best_norm#*:}
    echo "tests at those settings ($(since)):"
    gpu_pytest gpu_tests.log 120 tests/test_fast_ops.py tests/test_gpu_backends.py \
      -k "(causal_conv1d and cuda) or gated_norm or (samba-enc and triton-triton)" )
fi
for min in 0 64; do
  SAMBA_TRITON_SCAN_MIN_PROGRAMS=$min timeout 90 python3 scripts/gpu/perf_probe.py --out $OUT/min_programs_$min \
    --parts memory > $OUT/min_programs_$min.log 2>&1
  echo "600 s, min programs $min: $(grep memory600 $OUT/min_programs_$min.log | python3 -c "import sys,json;print('; '.join(f\"ckpt {r['activation_checkpointing']} pieces {r['checkpoint_piece_tokens']}: {r['ms']} ms {r['peak_mib']} MiB\" for r in map(json.loads,sys.stdin)))") at $(since)"
done
