#!/usr/bin/env bash
# usage: bash scripts/gpu/fetch_wheels.sh     (on a machine with PyPI; then copy .whl/ to the GPU machine)
#
# Fill .whl/ (git-ignored) with the wheels an offline GPU machine lacks, so scripts/gpu/bench.sh and
# scripts/gpu/env.sh can install braindecode and its dependencies there without a registry.
# What a CUDA PyTorch image usually has already (torch, torchaudio, einops, numpy, scipy, pandas,
# scikit-learn, matplotlib, h5py, joblib, jinja2, tqdm, packaging, requests, aiohttp, fsspec, tabulate,
# lazy-loader, typing-extensions ...) is not fetched.
# Versions are pinned to what the development machine runs; targets are CPython 3.12 manylinux x86_64.
# The wheels take a few tens of MiB.
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=.whl
mkdir -p "$DEST"

WHEELS=(
  braindecode==1.8.1
  mne==1.13.2 mne-bids==0.20.0 pooch==1.9.0 platformdirs==4.14.8 decorator==5.2.1
  skorch==1.4.0 torchinfo==1.8.0 wfdb==4.3.1 soundfile==0.14.0 cffi==2.0.0 pycparser==3.0
  linear-attention-transformer==0.19.1 linformer==0.2.3 local-attention==1.11.2 product-key-memory==0.3.0
  colt5-attention==0.11.2 axial-positional-embedding==0.3.12 hyper-connections==0.4.11
  torch-einops-utils==0.2.0 docstring-inheritance==3.0.0
  pydantic==2.13.4 pydantic-core==2.46.4 annotated-types==0.7.0 typing-inspection==0.4.2
)

have() {  # a wheel or sdist of NAME==VER already in $DEST (pip normalises - to _ in file names)
  local name=${1%%==*} ver=${1##*==}
  local stem; stem=$(echo "$name" | tr '-' '_')
  compgen -G "$DEST/${stem}-${ver}[-.]*" >/dev/null || compgen -G "$DEST/${name}-${ver}[-.]*" >/dev/null
}

for spec in "${WHEELS[@]}"; do
  if have "$spec"; then echo "have $spec"; continue; fi
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$DEST" "$spec"
  echo "got  $spec"
done

# mamba-ssm exists on PyPI only as a source distribution (its Mamba2 path is pure Python + Triton);
# scripts/gpu/install_mamba_ssm.sh may have fetched it already.
if have mamba-ssm==2.3.2.post1; then
  echo "have mamba-ssm==2.3.2.post1"
else
  # pip prepares the sdist's metadata, which runs its setup.py: that needs torch and the variables that stop it
  # from building or downloading CUDA code, so the environment scripts/setup.sh made runs it when there is one.
  SDIST_PY=python3
  [ -x .venv/bin/python ] && SDIST_PY=.venv/bin/python
  MAMBA_SKIP_CUDA_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE \
    "$SDIST_PY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$DEST" mamba-ssm==2.3.2.post1 \
    || echo "WARNING: mamba-ssm sdist not fetched (run scripts/setup.sh first); the GPU run uses SAMBA's own kernels and skips the tests that compare with mamba_ssm" >&2
fi

git check-ignore -q "$DEST" || { echo "ERROR: $DEST is not git-ignored" >&2; exit 1; }
du -sh "$DEST"
ls -1 "$DEST" | wc -l
