#!/usr/bin/env bash
# Install SAMBA and everything the notebooks and tests need into the current Python environment.
# torch is pinned to 2.13.0: on a machine whose pip can see the CPU wheel (this project's CI) that is
# a ~200 MB CPU build; an unpinned torch would pull a multi-GB CUDA build. On a GPU server install
# the CUDA torch of your choice first; this script then leaves it alone.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! $PY -c "import torch" 2>/dev/null; then
  $PY -m pip install --quiet "torch==2.13.0"
fi
$PY -m pip install --quiet -e ".[notebooks,test]"
$PY -m ipykernel install --user --name python3 >/dev/null 2>&1 || true
$PY -c "import samba, torch, mne; print(f'samba {samba.__version__} | torch {torch.__version__} | mne {mne.__version__}')"
