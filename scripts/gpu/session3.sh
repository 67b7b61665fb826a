#!/usr/bin/env bash
# GPU session 3 on a 2-GPU machine (one device call, < 8 min):
#   GPU 0: full-model mamba_ssm-vs-torch check, then the layer-level GPU tests (tests/test_gpu_backends.py)
#   GPU 1: 1-GPU pretraining throughput (same command as the release run, fixed steps)
#   then:  2-GPU DDP pretraining throughput (torchrun), for the scaling efficiency.
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/gpu/env.sh
export TRITON_CACHE_DIR=/tmp/triton_cache
STEPS=${STEPS:-150}
run_pt() {  # run_pt NGPU OUTDIR
  if [ "$1" -gt 1 ]; then
    python3 -m torch.distributed.run --standalone --nproc_per_node "$1" -m samba pretrain --out "$2" --profile full \
      --steps "$STEPS" --no-resume --no-progress --ckpt-every 100000 --val-every 100000
  else
    python3 -m samba pretrain --out "$2" --profile full --steps "$STEPS" --no-resume --no-progress \
      --ckpt-every 100000 --val-every 100000
  fi
}
(CUDA_VISIBLE_DEVICES=1 run_pt 1 runs/scaling_1 > /tmp/scaling_1.log 2>&1) &
CUDA_VISIBLE_DEVICES=0 timeout 200 python3 scripts/gpu/check_backends.py --out "$OUT/backend_check.json" 2>&1 | tail -4
CUDA_VISIBLE_DEVICES=0 TRITON_F32_DEFAULT=ieee timeout 170 python3 -m pytest -v -rP -p no:cacheprovider -o addopts="" \
  tests/test_gpu_backends.py > "$OUT/gpu_tests.log" 2>&1
grep -E "PASSED|FAILED|ERROR|GPU-TOL|passed|failed" "$OUT/gpu_tests.log" | tail -40
wait
run_pt 2 runs/scaling_2 > /tmp/scaling_2.log 2>&1
tail -2 /tmp/scaling_1.log /tmp/scaling_2.log
python3 - <<'PY' | tee "$OUT/scaling.json"
import csv, json, torch
def rate(k):  # median logged throughput over the second half of the run (after compile / warm-up)
    rows = [r for r in csv.DictReader(open(f"runs/scaling_{k}/metrics.csv")) if r["eeg_s_per_s"]]
    vals = sorted(float(r["eeg_s_per_s"]) for r in rows[len(rows) // 2:])
    return vals[len(vals) // 2], len(rows)
(r1, n1), (r2, n2) = rate(1), rate(2)
print(json.dumps({"device": torch.cuda.get_device_name(0), "gpus": 2, "per_gpu_batch": 32, "window_s": 30,
                  "backend": "mamba_ssm", "eeg_s_per_s_1gpu": r1, "eeg_s_per_s_2gpu": r2, "speedup": r2 / r1,
                  "scaling_efficiency": r2 / (2 * r1), "logged_rows": [n1, n2]}))
PY
cp runs/scaling_1/metrics.csv "$OUT/scaling_1_metrics.csv"; cp runs/scaling_2/metrics.csv "$OUT/scaling_2_metrics.csv"
