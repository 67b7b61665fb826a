#!/usr/bin/env bash
# usage: bash scripts/gpu/bench.sh     (from the repository root; OUT=DIR BUDGET_S=480 TOTAL_S=540 DEVICE=cuda)
#
# The GPU efficiency benchmark (`samba bench`, SAMBA vs the braindecode peers) in one command, for an offline
# GPU machine that has the wheels of .whl/ beside the checkout, within TOTAL_S seconds:
#
# 1. installs the wheels of .whl/ (scripts/gpu/fetch_wheels.sh fills it here) into /tmp/site,
# 2. installs mamba-ssm's pure-Python part (Mamba2 runs on Triton; no CUDA extension is compiled),
# 3. runs `samba bench --device cuda --budget-s 480` (less if the setup ran long: the whole script keeps
#    inside TOTAL_S, default 540 s = 9 minutes) and draws the figures. Everything lands in $OUT
#    (default results/gpu): bench_h100.json, its PNGs, bench_log.txt, nvidia_smi.csv.
# SAMBA_COMMIT=<sha> names the commit in the JSON when the copy on the device has no .git.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-results/gpu}
BUDGET_S=${BUDGET_S:-480}
TOTAL_S=${TOTAL_S:-540}
DEVICE=${DEVICE:-cuda}        # DEVICE=cpu EXTRA_ARGS="--quick" tries the script without a GPU
EXTRA_ARGS=${EXTRA_ARGS:-}
SITE=${SITE:-/tmp/site}
mkdir -p "$OUT" "$SITE"
t0=$(date +%s)

nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv \
  > "$OUT/nvidia_smi.csv" 2>&1 || true

if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .whl/*.whl 2>&1 | tail -3
else
  echo "WARNING: no wheels in .whl/ (fill it with scripts/gpu/fetch_wheels.sh and copy it along); peers will fail" >&2
fi

if ! python3 -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('mamba_ssm') is None)" 2>/dev/null \
   && ! PYTHONPATH="$SITE" python3 -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('mamba_ssm') is None)"; then
  if [ -f scripts/gpu/install_mamba_ssm.sh ]; then
    MAMBA_SITE="$SITE" bash scripts/gpu/install_mamba_ssm.sh || echo "WARNING: install_mamba_ssm.sh failed" >&2
  fi
  if ! PYTHONPATH="$SITE" python3 -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('mamba_ssm') is None)"; then
    sdist=$(ls .whl/mamba_ssm-*.tar.gz 2>/dev/null | head -1)
    if [ -n "$sdist" ]; then
      rm -rf /tmp/mamba_src && mkdir -p /tmp/mamba_src && tar xzf "$sdist" -C /tmp/mamba_src
      (cd /tmp/mamba_src/mamba_ssm-* && MAMBA_SKIP_CUDA_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE \
        python3 -m pip install -q --no-build-isolation --no-deps --no-index --target "$SITE" . 2>&1 | tail -3)
    else
      echo "WARNING: no mamba_ssm sdist in .whl/; SAMBA runs its torch backend" >&2
    fi
  fi
fi
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
setup_s=$(( $(date +%s) - t0 ))
# margin after the budget: the last row (<= 20 s cap), SIGINT handling, figures
room=$(( TOTAL_S - setup_s - 45 ))
[ "$room" -lt "$BUDGET_S" ] && BUDGET_S=$room
echo "setup took ${setup_s} s; benchmark budget ${BUDGET_S} s" >&2

# The bench writes its JSON after every model, so a run stopped by the timeout still leaves its rows.
timeout -s INT -k 20 $(( BUDGET_S + 30 )) python3 -m samba bench --device "$DEVICE" --out "$OUT/bench_h100.json" \
  --budget-s "$BUDGET_S" --plot "$OUT" $EXTRA_ARGS 2> >(tee "$OUT/bench_log.txt" >&2)
rc=$?
if [ $rc -ne 0 ] && [ -f "$OUT/bench_h100.json" ]; then  # draw what there is
  python3 -c "from samba.bench import plot_bench; [print(p) for p in plot_bench('$OUT/bench_h100.json', '$OUT')]" || true
fi
echo "total $(( $(date +%s) - t0 )) s, rc $rc" >&2
exit $rc
