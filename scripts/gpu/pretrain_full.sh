#!/usr/bin/env bash
# usage: [NGPU=1] [MINUTES=6] [BATCH=128] [TOTAL_STEPS=N] [BENCH=0] bash scripts/gpu/pretrain_full.sh [scaling]
#
# Full-profile SAMBA pretraining on a GPU machine within MINUTES (a second call resumes):
#   bash scripts/gpu/pretrain_full.sh            # all visible GPUs (torchrun when more than one)
#   bash scripts/gpu/pretrain_full.sh scaling    # pretraining throughput on 1 GPU vs N GPUs (scaling efficiency)
# .whl/ and .gpu/ beside the checkout provide the wheels and the data pack (scripts/gpu/env.sh).
# While it trains, nvidia-smi samples GPU utilisation every second; afterwards the benchmark times SAMBA's train
# step at the same window and batch (what results/pretrain_throughput.json compares the loop with).
# Writes under $OUT (<= 8 files): samba_pretrained/ (the model folder: model.safetensors, config.json,
# manifest.json), logs.tar.gz (metrics.csv, pretrain.log, gpu_util.csv, bench_same_batch.json, config.json),
# pretrain_run.tar.gz (the verified train_state/ folder, config.json and metrics.csv, for resuming),
# pretrain_best.tar (best/, the lowest-validation model so far: a continuation needs it too, or it refuses to
# resume), snapshots_N.tar (the --keep-every snapshots, 3 per file). To release it:
# python scripts/release_checkpoint.py RUN_DIR --script "<this command>" --call COMMIT,DEVICE,DATE,FROM,TO (one per
# call), then score it (samba.evaluation.reconstruction, scripts/gpu/evaluate.sh).
# EXTRA_ARGS passes more options, e.g. EXTRA_ARGS="--loss-on masked --ckpt-every 500 --keep-every 1500".
# A run longer than one call: TOTAL_STEPS fixes the schedule (--steps) and MINUTES only ends each call
# (--stop-after-minutes); the same command continues the run from runs/pretrain_full (carry that folder, or
# what pretrain_run.tar.gz and pretrain_best.tar hold, to a fresh machine). At about 38.8 ms a step (H100, batch
# 128 x 30 s, CUDA graphs), TOTAL_STEPS=46000 is about 30 minutes of training. BENCH=0 skips the same-batch benchmark (up to 150 s) in calls
# that only continue such a run; the call that ends it should keep it. A resumable run's train_state/ (13 MB), best/ (4 MB) and
# the full data pack do not all fit what one call carries: pack the corpus alone
# (scripts/gpu/make_pack.py --pretraining-only --out .gpu/pack_pretrain) and pass SAMBA_PACK=.gpu/pack_pretrain.
set -uo pipefail  # no -e: env.sh tolerates missing optional pieces; failures show in the log
cd "$(dirname "$0")/../.."
# shared GPU environment (offline wheels, preprocessed-data pack, OUT, NCCL without NVLink multicast)
source scripts/gpu/env.sh
PY=python3
NGPU=${NGPU:-$($PY -c "import torch; print(max(torch.cuda.device_count(), 1))")}
MINUTES=${MINUTES:-6}
RUN=runs/pretrain_full

launch() {  # launch NPROC ARGS...: same command on 1 or N GPUs
  local n=$1; shift
  if [ "$n" -gt 1 ]; then
    $PY -m torch.distributed.run --standalone --nproc_per_node "$n" -m samba pretrain "$@"
  else
    $PY -m samba pretrain "$@"
  fi
}

if [ "${1:-}" = "scaling" ]; then
  # Same per-GPU batch, fixed steps, fresh runs: throughput (EEG seconds per second) on 1 vs N GPUs.
  STEPS=${STEPS:-120}
  for n in 1 "$NGPU"; do
    launch "$n" --out "runs/scaling_$n" --profile full --steps "$STEPS" --no-resume --no-progress \
      --ckpt-every 100000 --val-every 100000 2>&1 | tail -3 | tee -a "$OUT/pretrain.log"
  done
  $PY - "$NGPU" <<'PY' | tee "$OUT/scaling.json"
import csv, json, sys
n = int(sys.argv[1])
def rate(k):  # median throughput over the second half of the run (after warm-up / compilation)
    rows = list(csv.DictReader(open(f"runs/scaling_{k}/metrics.csv")))
    vals = sorted(float(r["eeg_s_per_s"]) for r in rows[len(rows) // 2:])
    return vals[len(vals) // 2]
r1, rn = rate(1), rate(n)
print(json.dumps({"gpus": n, "eeg_s_per_s_1gpu": r1, f"eeg_s_per_s_{n}gpu": rn, "speedup": rn / r1,
                  "scaling_efficiency": rn / (n * r1)}))
PY
  exit 0
fi

# --max-minutes fits the one-cycle schedule to the budget (measured over the first steps) and stops
# with a checkpoint at the budget; a second call with the same command resumes.
BATCH=${BATCH:-128}
if [ -n "${TOTAL_STEPS:-}" ]; then BUDGET="--steps $TOTAL_STEPS --stop-after-minutes $MINUTES"; else BUDGET="--max-minutes $MINUTES"; fi
LOGS=$(mktemp -d)
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -lms 1000 > "$LOGS/gpu_util.csv" &
SMI=$!
echo "$PY -m samba pretrain --out $RUN --profile full $BUDGET --batch-size $BATCH ${EXTRA_ARGS:-}" \
  > "$LOGS/command.txt"
launch "$NGPU" --out "$RUN" --profile full $BUDGET --batch-size "$BATCH" ${EXTRA_ARGS:-} 2>&1 \
  | tee "$LOGS/pretrain.log"
kill $SMI 2>/dev/null
# the benchmark's train step at the pretraining window and batch, for the loop-vs-benchmark ratio
WINDOW_S=$($PY -c "import json; print(json.load(open('$RUN/config.json'))['window_s'])")
[ "${BENCH:-1}" = 0 ] || $PY -m samba bench --device cuda --models SAMBA --sweeps context --contexts "$WINDOW_S" --batches "$BATCH" \
  --budget-s 150 --out "$LOGS/bench_same_batch.json" -q > /dev/null || echo "WARNING: same-batch benchmark failed" >&2
rm -rf "$OUT/samba_pretrained"
cp -r "$RUN/samba_pretrained" "$OUT/samba_pretrained"
cp "$RUN/metrics.csv" "$RUN/config.json" "$LOGS/"
tar -czf "$OUT/logs.tar.gz" -C "$LOGS" .
tar -czf "$OUT/pretrain_run.tar.gz" -C "$RUN" config.json metrics.csv $(cd "$RUN" && ls -d train_state 2>/dev/null || true)
[ -d "$RUN/best" ] && tar -cf "$OUT/pretrain_best.tar" -C "$RUN" best
if [ -d "$RUN/snapshots" ]; then  # 3 snapshot folders per file (each file under the 16 MiB a call returns)
  (cd "$RUN/snapshots" && ls -d step_* | sort | xargs -n 3 | nl -v0 | while read -r i dirs; do
     tar -cf "$OUT/snapshots_$i.tar" $dirs; done)
fi
tail -2 "$LOGS/pretrain.log"
ls -la "$OUT"
