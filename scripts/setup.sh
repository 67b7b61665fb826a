#!/usr/bin/env bash
# Usage: bash scripts/setup.sh
# Creates .venv/ in the repository (or uses the virtual environment that is active), installs the CPU
# build of torch 2.13.0, SAMBA with its notebook and test extras, and a Jupyter kernel named "samba"
# registered INSIDE that environment (nothing is written to your home directory). A second run only checks.
#
# GPU server: create and activate your own environment, install the CUDA torch 2.13.0 that matches your
# driver first (pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128, or the build
# for your CUDA), then run this script; it keeps that torch. mamba-ssm's kernels: pip install -e ".[gpu]".
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${VIRTUAL_ENV:-}" ]; then
  PY="$VIRTUAL_ENV/bin/python"
else
  if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $(python3 --version)"
    python3 -m venv .venv
  fi
  PY="$PWD/.venv/bin/python"
fi

# Already installed (same pyproject, kernel present, imports clean)? Then a second run is seconds.
stamp="$($PY -c 'import sys; print(sys.prefix)')/.samba-setup"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && $PY -c "import samba, torch, mne" 2>/dev/null; then
  echo "setup: $($PY -c 'import sys; print(sys.prefix)') is up to date"
  exit 0
fi

# torch first and pinned: the CPU wheel (about 200 MB) where pip can see one; an unpinned torch from the
# default index is the multi-GB CUDA build. A torch that is already installed (e.g. CUDA) is kept.
if ! $PY -c "import torch" 2>/dev/null; then
  $PY -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
fi
$PY -m pip install --quiet --disable-pip-version-check -e ".[notebooks,test]"
# The notebooks' kernel lives in this environment only (--sys-prefix), so papermill and nbval use its Python.
$PY -m ipykernel install --sys-prefix --name samba --display-name "Python (samba)" >/dev/null
$PY -c "import samba, torch, mne; print(f'setup: samba {samba.__version__} | torch {torch.__version__} | mne {mne.__version__} in {__import__(\"sys\").prefix}')"
echo "$want" > "$stamp"
