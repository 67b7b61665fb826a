"""One-file model checkpoints: weights + config + montage metadata.

A checkpoint is a ``torch.save`` dict::

    {"format": "samba-model", "version": 1, "config": SAMBAConfig.to_dict(),
     "state_dict": {...}, "extra": {...}}   # extra: montage, training provenance, head, ...

It holds only tensors and plain Python values, so it loads with ``torch.load(weights_only=True)``
(no pickled code is executed), on any device (``map_location``), and the Mamba2 parameter names are
those of ``mamba_ssm`` whichever backend saved it. Files are written atomically (temporary file +
``os.replace``) so an interrupted save never leaves a half-written checkpoint behind.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

__all__ = ["save_model", "load_model", "load_checkpoint", "atomic_torch_save", "CheckpointError"]

FORMAT = "samba-model"
VERSION = 1


class CheckpointError(ValueError):
    """A file is not a usable SAMBA checkpoint (corrupt, truncated, wrong format or mismatched)."""


def atomic_torch_save(obj, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_model(path, model, extra: dict | None = None) -> Path:
    """Save ``model`` (a :class:`samba.SAMBA`) with its config and ``extra`` metadata."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    obj = {"format": FORMAT, "version": VERSION, "config": model.cfg.to_dict(),
           "state_dict": state, "extra": dict(extra or {})}
    return atomic_torch_save(obj, path)


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read and validate a checkpoint dict without building the model."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, random bytes, pickle with code, ...
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt or truncated?): {e}") from e
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a SAMBA model checkpoint (format={obj.get('format') if isinstance(obj, dict) else type(obj).__name__!r})")
    if obj.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} has checkpoint version {obj['version']}; this samba reads <= {VERSION}: upgrade samba")
    for key in ("config", "state_dict"):
        if key not in obj:
            raise CheckpointError(f"{path} lacks '{key}'")
    return obj


def load_model(path, map_location="cpu", config_overrides: dict | None = None):
    """Build the model from a checkpoint: returns ``(model, extra)``.

    ``config_overrides`` may change run-time options that do not touch parameters (e.g.
    ``{"backend": "torch"}``); a state dict that does not fit the config raises
    :class:`CheckpointError` naming the missing / unexpected / mis-shaped tensors.
    """
    from .model import SAMBA, SAMBAConfig

    obj = load_checkpoint(path, map_location=map_location)
    cfg_dict = dict(obj["config"])
    cfg_dict.update(config_overrides or {})
    try:
        cfg = SAMBAConfig.from_dict(cfg_dict)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: config does not match this samba version: {e}") from e
    model = SAMBA(cfg)
    own = model.state_dict()
    sd = obj["state_dict"]
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = sorted(k for k in set(own) & set(sd) if own[k].shape != sd[k].shape)
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{path}: weights do not match the config: missing={missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected={unexpected[:5]}{'...' if len(unexpected) > 5 else ''}, "
            f"shape mismatch={[(k, tuple(sd[k].shape), tuple(own[k].shape)) for k in shapes[:5]]}")
    model.load_state_dict(sd)
    return model, obj.get("extra", {})
