# Source me on the offline GPU machine (from the repository root):  source scripts/gpu/env.sh
# 1. installs what the GPU image lacks from the carried .whl/ folder (mne, braindecode, ... as wheels;
#    mamba_ssm's pure-Python/Triton part from its sdist) into /tmp/site,
# 2. installs the carried preprocessed-data pack (.gpu/pack, written here by scripts/gpu/make_pack.py;
#    float16 copies of the cache entries, never committed) into the cache, so no raw recording is needed,
# 3. sets the environment every GPU script shares (OUT, NCCL without NVLink multicast, no downloads).
export OUT=${OUT:-runs/gpu_out}
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg SAMBA_DOWNLOAD=0
export SAMBA_DATA_DIR=${SAMBA_DATA_DIR:-/tmp/samba_data}
export SAMBA_CACHE_DIR=${SAMBA_CACHE_DIR:-$SAMBA_DATA_DIR/preprocessed}
export SAMBA_COMMIT=${SAMBA_COMMIT:-$(cat .gpu/COMMIT 2>/dev/null || echo unknown)}
if [ -z "${SAMBA_DATA_MIRROR:-}" ]; then  # a raw mirror if one travelled; else the data pack below
  for c in shared/data ../shared/data; do
    if [ -f "$c/SHA256SUMS" ]; then export SAMBA_DATA_MIRROR=$(cd "$c" && pwd); break; fi
  done
fi
_t0=$(date +%s)
if [ ! -f /tmp/site/.samba_wheels ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl 2>&1 | tail -2
  touch /tmp/site/.samba_wheels
fi
MAMBA_SITE=/tmp/site source scripts/gpu/install_mamba_ssm.sh >/dev/null
export PYTHONPATH="$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .gpu/pack ]; then
  python3 -c "from samba.data.cache import import_entries; print('data pack entries:', import_entries('.gpu/pack'))"
fi
python3 - <<'PY'
import torch, importlib.util as u
print("torch", torch.__version__, "| GPUs", torch.cuda.device_count(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "",
      "| mamba_ssm", u.find_spec("mamba_ssm") is not None, "| braindecode", u.find_spec("braindecode") is not None)
PY
echo "env ready in $(( $(date +%s) - _t0 )) s"
# Triton's autotune choices carried from an earlier call (.gpu/autotune_cache.tgz, JSON only, a few kB): call
# `use_autotune_cache` to unpack them and compile one (the chosen) config per kernel instead of autotuning.
use_autotune_cache() {
  mkdir -p /tmp/tc_full
  [ -f .gpu/autotune_cache.tgz ] && tar xzf .gpu/autotune_cache.tgz -C /tmp/tc_full && \
    echo "autotune cache entries: $(find /tmp/tc_full -name '*.autotune.json' | wc -l)"
  export TRITON_CACHE_AUTOTUNING=1 TRITON_CACHE_DIR=/tmp/tc_full
}
# gpu_pytest <log name> <seconds> <pytest args...>: CUDA tests, verbose, into $OUT/<log name> first (so a cut run
# still says what passed), one Triton config per mamba_ssm kernel and IEEE float32 in Triton's dots (as
# tests/test_gpu_backends.py's tight tolerances assume); prints the count of passed and failed tests.
gpu_pytest() {
  local log=$OUT/$1 secs=$2; shift 2
  ( export SAMBA_TRITON_AUTOTUNE=single TRITON_CACHE_DIR=/tmp/tc_single TRITON_F32_DEFAULT=ieee
    timeout "$secs" python3 -m pytest -v -p no:cacheprovider -o addopts="" "$@" >> "$log" 2>&1
    echo "pytest rc $?: $(grep -c PASSED "$log") passed, $(grep -c FAILED "$log") failed so far in $(basename "$log")"
    grep -E "FAILED|^E  " "$log" | head -10 )
}
# probe_rows <perf_probe stdout log>: its eager rows on one line ("b4 24.5 ms b64 ..."), and its first error
probe_rows() {
  echo "$(grep '"eager"' "$1" | python3 -c "import sys,json;print(' '.join(f\"b{r['batch']} {r['ms']} ms\" for r in map(json.loads,sys.stdin)))") $(grep -m1 Error "$1" | cut -c1-200)"
}
