# usage: source scripts/gpu/env.sh     (on an offline GPU machine, from the repository root)
#
# 1. installs what the GPU image lacks from the .whl/ folder copied beside the checkout (mne, braindecode, ... as wheels;
#    mamba_ssm's pure-Python/Triton part from its sdist) into /tmp/site,
# 2. installs the preprocessed-data pack ($SAMBA_PACK, default .gpu/pack, written here by scripts/gpu/make_pack.py;
#    float16 copies of the cache entries, never committed) into the cache, so no raw recording is needed,
# 3. sets the environment every GPU script shares (OUT, NCCL without NVLink multicast, no downloads).
export OUT=${OUT:-runs/gpu_out}
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg SAMBA_DOWNLOAD=0
export SAMBA_DATA_DIR=${SAMBA_DATA_DIR:-/tmp/samba_data}
export SAMBA_CACHE_DIR=${SAMBA_CACHE_DIR:-$SAMBA_DATA_DIR/preprocessed}
export SAMBA_COMMIT=${SAMBA_COMMIT:-$(cat .gpu/COMMIT 2>/dev/null || echo unknown)}
# A raw mirror is used when $SAMBA_DATA_MIRROR names one; else the data pack below.
_t0=$(date +%s)
if [ ! -f /tmp/site/.samba_wheels ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl 2>&1 | tail -2
  touch /tmp/site/.samba_wheels
fi
MAMBA_SITE=/tmp/site source scripts/gpu/install_mamba_ssm.sh >/dev/null
export PYTHONPATH="$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
SAMBA_PACK=${SAMBA_PACK:-.gpu/pack}
if [ -d "$SAMBA_PACK" ]; then
  python3 -c "import sys; from samba.data.cache import import_entries; print('data pack entries:', import_entries(sys.argv[1]))" "$SAMBA_PACK"
fi
python3 - <<'PY'
import torch, importlib.util as u
print("torch", torch.__version__, "| GPUs", torch.cuda.device_count(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "",
      "| mamba_ssm", u.find_spec("mamba_ssm") is not None, "| braindecode", u.find_spec("braindecode") is not None)
PY
echo "env ready in $(( $(date +%s) - _t0 )) s"
