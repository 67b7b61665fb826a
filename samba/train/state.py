"""Training-state checkpoints: atomic writes, RNG capture, and a fallback to the previous good file.

A *training* checkpoint (this module) holds everything needed to continue a run bit-for-bit: model,
optimiser, scheduler, grad scaler, every RNG (python, numpy, torch CPU, CUDA, our mask generator)
and the data position. The *model* checkpoint that users load (`samba.checkpoint.save_model`) is a
separate, smaller file.

Files in a run folder:
    train_state.pt       latest good state
    train_state.prev.pt  the one before (kept so a corrupt latest file is survivable)
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path

import numpy as np
import torch

LATEST = "train_state.pt"
PREVIOUS = "train_state.prev.pt"


class CheckpointError(RuntimeError):
    """No readable training checkpoint, with the files tried and why each failed."""


def atomic_torch_save(obj, path: Path) -> None:
    """Write to `path.tmp`, fsync, then os.replace: readers see the old file or the new, never half."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def capture_rng(generators: dict[str, torch.Generator] | None = None) -> dict:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "generators": {k: g.get_state() for k, g in (generators or {}).items()},
    }
    return state


def restore_rng(state: dict, generators: dict[str, torch.Generator] | None = None) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for k, g in (generators or {}).items():
        if k in state.get("generators", {}):
            g.set_state(state["generators"][k])


def save_train_state(run_dir: Path, state: dict) -> Path:
    """Rotate latest -> prev, then atomically write the new latest."""
    run_dir = Path(run_dir)
    latest, prev = run_dir / LATEST, run_dir / PREVIOUS
    tmp = run_dir / (LATEST + ".new")
    atomic_torch_save(state, tmp)  # complete on disk before we touch the good files
    if latest.exists():
        os.replace(latest, prev)
    os.replace(tmp, latest)
    return latest


def load_train_state(run_dir: Path, map_location="cpu") -> dict | None:
    """Latest readable training state, or None when the folder has none.

    A corrupt latest file falls back to the previous one with a warning; when every file present is
    unreadable, raises CheckpointError naming each file and its error.
    """
    run_dir = Path(run_dir)
    candidates = [p for p in (run_dir / LATEST, run_dir / PREVIOUS) if p.exists()]
    if not candidates:
        return None
    errors = []
    for p in candidates:
        try:
            state = torch.load(p, map_location=map_location, weights_only=False)
            if not isinstance(state, dict) or "step" not in state or "model" not in state:
                raise ValueError("not a SAMBA training state (missing 'step'/'model')")
        except Exception as e:  # noqa: BLE001 - any unreadable file is a corrupt checkpoint
            errors.append(f"{p}: {type(e).__name__}: {e}")
            continue
        if errors:
            warnings.warn(f"corrupt training checkpoint skipped, resuming from {p.name}: {errors[0]}",
                          RuntimeWarning, stacklevel=2)
        state["_path"] = str(p)
        return state
    raise CheckpointError("no readable training checkpoint in " + str(run_dir) + ":\n  " + "\n  ".join(errors)
                          + "\nDelete the run folder or pass --no-resume to start over.")
