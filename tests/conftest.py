"""Shared fixtures. ``mirror``: the real-EEG mirror (read-only), resolved as $SAMBA_DATA_MIRROR, else
``<repo>/../shared/data`` (a mirror beside the clone); tests that need it skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from samba.paths import absolutize_env

REPO = Path(__file__).resolve().parents[1]

# A relative SAMBA_DATA_MIRROR (as in the README's test command) means "from where pytest was started";
# made absolute before any test or notebook kernel (nbval runs them in notebooks/) reads it.
absolutize_env()

# GPU tests: compile each mamba_ssm Triton kernel with one config (its smallest tiles) instead of autotuning ~10 configs
# per shape family (minutes per fresh process); results do not depend on tile sizes beyond rounding.
os.environ.setdefault("SAMBA_KERNELS", "autotune=single")


def _find_mirror() -> Path | None:
    env = os.environ.get("SAMBA_DATA_MIRROR")
    candidates = [Path(env).expanduser()] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for c in candidates:
        if (c / "SHA256SUMS").is_file():
            return c
    return None


@pytest.fixture(scope="session")
def mirror() -> Path:
    path = _find_mirror()
    if path is None:
        pytest.skip("real-EEG mirror not found: set SAMBA_DATA_MIRROR or place shared/data beside the repository")
    return path


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory) -> Path:
    """One preprocessed-recording cache per test session (cold on the first load, warm afterwards)."""
    return tmp_path_factory.mktemp("samba_cache")


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch, tmp_path_factory):
    """Tests never touch the network or the user's ~/.cache/samba."""
    monkeypatch.setenv("SAMBA_DOWNLOAD", "0")
    if "SAMBA_DATA_DIR" not in os.environ:
        monkeypatch.setenv("SAMBA_DATA_DIR", str(tmp_path_factory.getbasetemp() / "samba_data_dir"))
