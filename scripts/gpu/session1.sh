#!/usr/bin/env bash
# GPU session 1 on a 2-GPU machine (one device call, < 10 min):
#   GPU 1: full-profile pretraining (scripts/gpu/pretrain_full.sh, MINUTES budget)
#   GPU 0: mamba_ssm vs torch backend equivalence tests, then the full-model fwd+bwd timing.
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/gpu/env.sh
MINUTES=${MINUTES:-6.5}
(CUDA_VISIBLE_DEVICES=1 NGPU=1 MINUTES=$MINUTES bash scripts/gpu/pretrain_full.sh > "$OUT/pretrain_console.log" 2>&1; echo "pretrain rc $?" >> "$OUT/pretrain_console.log") &
CUDA_VISIBLE_DEVICES=0 TRITON_F32_DEFAULT=ieee timeout 200 python3 -m pytest -q -rP -p no:cacheprovider -o addopts="" \
  tests/test_gpu_backends.py 2>&1 | tee "$OUT/gpu_tests.log" | grep -E "GPU-TOL|passed|failed|Error" | tail -40
CUDA_VISIBLE_DEVICES=0 timeout 240 python3 scripts/gpu/model_timing.py --out "$OUT/model_timing.json" 2>&1 | tail -8
wait
tail -3 "$OUT/pretrain_console.log"
ls -la "$OUT"
