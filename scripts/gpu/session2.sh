#!/usr/bin/env bash
# GPU session 2 on a 2-GPU machine (one device call, < 10 min):
#   GPU 0: the efficiency benchmark (SAMBA vs braindecode peers, scripts/gpu/bench.sh)
#   GPU 1: the fine-tuning results table from checkpoints/samba_pretrained.pt (scripts/gpu/finetune_table.sh)
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/gpu/env.sh
FINAL=$OUT
# One Triton cache for every process: the fine-tuning job on GPU 1 compiles SAMBA's kernels while the
# benchmark times the peers on GPU 0; SAMBA is benchmarked last and finds them compiled.
export TRITON_CACHE_DIR=/tmp/triton_cache
mkdir -p /tmp/bench_out /tmp/ft_out
(CUDA_VISIBLE_DEVICES=1 OUT=/tmp/ft_out MINUTES=${FT_MINUTES:-6.3} bash scripts/gpu/finetune_table.sh > /tmp/ft_out/console.log 2>&1) &
CUDA_VISIBLE_DEVICES=0 OUT=/tmp/bench_out BUDGET_S=${BUDGET_S:-400} \
  EXTRA_ARGS="--models BIOT,CBraMod,LUNA,Labram,EEGPT,EEGNet,SAMBA" bash scripts/gpu/bench.sh > /tmp/bench_out/console.log 2>&1
wait
gpu=$(python3 -c "import torch; n=torch.cuda.get_device_name(0).lower(); print('h200' if 'h200' in n else 'h100' if 'h100' in n else 'gpu')")
cp /tmp/bench_out/bench_h100.json "$FINAL/bench_$gpu.json" 2>/dev/null
cp /tmp/ft_out/finetune.json /tmp/ft_out/finetune.md /tmp/ft_out/spatial_weights.tar.gz "$FINAL/" 2>/dev/null
tar -czf "$FINAL/logs_and_figures.tgz" -C /tmp bench_out ft_out --exclude='*.json' --exclude='*.tar.gz' 2>/dev/null
tail -15 /tmp/bench_out/console.log; tail -25 /tmp/ft_out/console.log
ls -la "$FINAL"
