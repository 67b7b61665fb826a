"""Training-state checkpoints: verified, code-free, and never at the cost of the last good state.

A *training* checkpoint holds everything needed to continue a run bit-for-bit: model, optimiser,
scheduler, grad scaler, every RNG (python, numpy, torch CPU, CUDA, our mask generator) and the data
position. The *model* checkpoint users load (:func:`samba.checkpoint.save_model`) is separate.

Layout in a run folder (each a checkpoint folder of :mod:`samba.checkpoint`: ``state.pt`` + ``manifest.json``)::

    train_state/        latest good state
    train_state.prev/   the one before it
    train_state.new/    only between writing a new state and moving it into place

``state.pt`` holds only tensors and plain values (RNG states are stored as tensors), so it is read with
``torch.load(weights_only=True)``: a crafted file runs no code. Its size and sha256 are checked against
the manifest before it is parsed.

Saving (Lightning's fault-tolerant idea, done with renames): the new state is written and verified as
``train_state.new/``; only then is the latest moved to ``.prev`` (if the latest is itself corrupt it is
discarded instead, so a good ``.prev`` is never overwritten by a bad file), and ``.new`` becomes the
latest. A kill at any instant leaves at least one verified state; loading takes the newest that verifies.
"""

from __future__ import annotations

import io
import random
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch

from samba.checkpoint import CheckpointError as _ModelCheckpointError
from samba.checkpoint import read_verified, verify_files, write_folder
from samba.errors import SambaError, UsageError

LATEST = "train_state"
PREVIOUS = "train_state.prev"
INCOMING = "train_state.new"
STATE_FILE = "state.pt"

# Options that may differ on resume when named in --allow-change: budgets and bookkeeping only (select: which
# model is released at the end, not how it trains).
# Everything else defines the experiment; changing it mid-run would make config.json describe another run.
SAFE_TO_CHANGE = ("steps", "max_minutes", "log_every", "val_every", "ckpt_every", "val_batches", "select")
# Run-time options that never describe the experiment (where and how it runs, not what it computes).
NOT_COMPARED = ("out", "resume", "overwrite", "progress", "kill_at_step", "device", "compile", "cuda_graphs",
                "stop_after_minutes", "mirror", "find_unused_parameters", "allow_change", "keep_every")


class CheckpointError(SambaError, RuntimeError):
    """No usable training checkpoint, with the folders tried and why each failed."""


# ---------------------------------------------------------------------------------------------- RNG
def capture_rng(generators: dict[str, torch.Generator] | None = None) -> dict:
    """Every RNG state as tensors and plain numbers (so the checkpoint loads with weights_only=True)."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "generators": {k: g.get_state() for k, g in (generators or {}).items()},
    }


def restore_rng(state: dict, generators: dict[str, torch.Generator] | None = None) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state((npy["name"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for k, g in (generators or {}).items():
        if k in state.get("generators", {}):
            g.set_state(state["generators"][k])


# ---------------------------------------------------------------------------------------------- save / load
def _verified(folder: Path) -> bool:
    try:
        verify_files(folder)
        return True
    except _ModelCheckpointError:
        return False


def save_train_state(run_dir: Path, state: dict, before_rotate=None) -> Path:
    """Write ``state`` as the latest training checkpoint; the previous good one is kept until it is verified.

    ``before_rotate`` is a test hook called between the verified write and the renames (fault injection).
    """
    run_dir = Path(run_dir)
    buf = io.BytesIO()
    torch.save(state, buf)
    incoming, latest, prev = run_dir / INCOMING, run_dir / LATEST, run_dir / PREVIOUS
    write_folder(incoming, {STATE_FILE: buf.getvalue()})  # written, fsynced, verified
    if before_rotate is not None:
        before_rotate()
    if latest.exists():
        if _verified(latest):
            shutil.rmtree(prev, ignore_errors=True)
            latest.rename(prev)
        else:  # a corrupt latest must not replace the good backup
            warnings.warn(f"discarding corrupt training checkpoint {latest}; keeping {prev.name}", RuntimeWarning,
                          stacklevel=2)
            shutil.rmtree(latest)
    incoming.rename(latest)
    return latest


def _read_state(folder: Path, map_location) -> dict:
    data = read_verified(folder, STATE_FILE)
    try:
        state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - verified bytes that torch still refuses (e.g. a pickled object)
        raise CheckpointError(f"{folder / STATE_FILE} is not a plain-tensor training state "
                              f"({type(err).__name__}); it is not loaded") from None
    if not isinstance(state, dict) or "step" not in state or "model" not in state:
        raise CheckpointError(f"{folder / STATE_FILE} is not a SAMBA training state (missing 'step'/'model')")
    return state


def has_train_state(run_dir: Path) -> bool:
    return any((Path(run_dir) / n).exists() for n in (INCOMING, LATEST, PREVIOUS))


def load_train_state(run_dir: Path, map_location="cpu") -> dict | None:
    """Newest training state that verifies, or None when the folder has none.

    Order: ``.new`` (complete but not yet moved into place when a run was killed), latest, ``.prev``. A
    corrupt candidate is skipped with a warning; when every one present fails, raises CheckpointError
    naming each folder and its error.
    """
    run_dir = Path(run_dir)
    candidates = [run_dir / n for n in (INCOMING, LATEST, PREVIOUS) if (run_dir / n).exists()]
    if not candidates:
        return None
    errors = []
    for folder in candidates:
        try:
            state = _read_state(folder, map_location)
        except SambaError as err:
            errors.append(f"{folder.name}: {err}")
            continue
        if errors:
            warnings.warn(f"corrupt training checkpoint skipped, resuming from {folder.name}: {errors[0]}",
                          RuntimeWarning, stacklevel=2)
        state["_path"] = str(folder)
        return state
    raise CheckpointError(f"no readable training checkpoint in {run_dir} ({'; '.join(errors)}); "
                          "pass --no-resume --overwrite to start over, or use another --out")


# ---------------------------------------------------------------------------------------------- config
def config_changes(saved: dict, requested: dict) -> dict[str, tuple]:
    """``{field: (saved, requested)}`` for every compared field that differs."""
    keys = (set(saved) | set(requested)) - set(NOT_COMPARED)
    missing = object()
    out = {}
    for k in sorted(keys):
        a, b = saved.get(k, missing), requested.get(k, missing)
        if a is missing or b is missing:
            continue  # a field added or removed by a newer samba: not a change of this run
        if _normal(a) != _normal(b):
            out[k] = (a, b)
    return out


def _normal(v):
    if isinstance(v, (list, tuple)):
        return [_normal(x) for x in v]
    if isinstance(v, dict):
        return {k: _normal(x) for k, x in v.items()}
    return v


def check_resume_config(saved: dict, requested: dict, allow: tuple[str, ...] = ()) -> dict[str, tuple]:
    """Refuse to resume when the requested configuration differs from the checkpoint's.

    Returns the allowed changes (``{field: (old, new)}``) for the caller to apply and record; raises a
    UsageError listing every other difference. ``allow`` may only name :data:`SAFE_TO_CHANGE` fields.
    """
    unsafe = sorted(set(allow) - set(SAFE_TO_CHANGE))
    if unsafe:
        raise UsageError(f"--allow-change accepts only {', '.join(SAFE_TO_CHANGE)}; {', '.join(unsafe)} define(s) "
                         "the experiment: start a new run with another --out instead")
    changes = config_changes(saved, requested)
    refused = {k: v for k, v in changes.items() if k not in allow}
    if refused:
        listing = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in refused.items())
        hint = [k for k in refused if k in SAFE_TO_CHANGE]
        fix = f"pass --allow-change {','.join(hint)} to change " + ("them" if len(hint) > 1 else "it") if hint else ""
        raise UsageError(f"the run folder was started with a different configuration ({listing}); resume with the "
                         f"original options{', or ' + fix if fix else ''}, or start a new run with another --out")
    return changes
