#!/usr/bin/env bash
# Device call 1 of session 4 (one GPU, carry [".whl"], ~9 min): profile the current step (torch backend
# first: no Triton compile), then the mamba_ssm backend, then the GPU equivalence checks of issue #2.
# Triton's autotune choices and compiled kernels are cached on disk (TRITON_CACHE_AUTOTUNING=1) and
# returned as triton_cache.tgz so later calls can skip the ~145 s first-call compile + autotune.
set -u
source scripts/gpu/env.sh
export TRITON_CACHE_DIR=/tmp/triton_cache TRITON_CACHE_AUTOTUNING=1
python3 -c "import triton, triton.knobs as k; print('triton', triton.__version__, 'autotune cache', k.autotuning.cache)" || true
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw --format=csv > $OUT/nvidia_smi.csv 2>&1
t0=$(date +%s)
timeout 100 python3 scripts/gpu/profile_step.py --backend torch --batches 1 4 32 --out $OUT/prof_torch 2>&1 | tail -20
echo "torch profile done at $(( $(date +%s) - t0 )) s"
timeout 200 python3 scripts/gpu/profile_step.py --backend mamba_ssm --batches 1 4 32 --out $OUT/prof_mamba 2>&1 | tail -20
echo "mamba profile done at $(( $(date +%s) - t0 )) s"
timeout 90 python3 scripts/gpu/check_backends.py --out $OUT/backend_check.json 2>&1 | tail -5
echo "check_backends done at $(( $(date +%s) - t0 )) s"
left=$(( 500 - ($(date +%s) - t0) ))
TRITON_F32_DEFAULT=ieee timeout $left python3 -m pytest -v -rP -p no:cacheprovider -o addopts="" \
  tests/test_gpu_backends.py > $OUT/gpu_tests.log 2>&1
echo "pytest rc $? at $(( $(date +%s) - t0 )) s"; tail -5 $OUT/gpu_tests.log
tar czf $OUT/prof.tgz -C $OUT prof_torch prof_mamba && rm -rf $OUT/prof_torch $OUT/prof_mamba
tar czf $OUT/triton_cache.tgz -C /tmp triton_cache; ls -la $OUT
