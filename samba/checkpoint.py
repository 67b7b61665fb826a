"""Model checkpoints: a folder of safetensors weights, a JSON config and a manifest of hashes.

A model checkpoint is a folder::

    samba_pretrained/
        model.safetensors   the state dict (Mamba2 names are those of mamba_ssm, whichever backend saved it)
        config.json         {"format": "samba-model", "version": 2, "config": SAMBAConfig.to_dict(), "extra": {...}}
        manifest.json       {"files": {name: {"sha256": ..., "size": ...}}}: written last, checked first

Why this layout: loading runs no code. safetensors holds only tensors and JSON only plain values; the
former one-file ``torch.save`` pickle could carry any Python object, so a crafted file in a shared folder
could run code on load. Every file is verified against the manifest (size first, then sha256) before it
is parsed, and the bytes that were hashed are the bytes that are parsed, so a flipped byte is a
:class:`CheckpointError` naming the file, never silently different weights. Tensors inside ``extra``
(e.g. a classifier head) go to the safetensors file under ``extra/<key path>`` with a
``{"__tensor__": name}`` placeholder in the JSON.

Folders are written atomically: into a temporary sibling (each file fsynced, the manifest last), then
renamed into place; an interrupted save leaves the previous checkpoint intact. A path ending in ``.pt``
names the folder without that suffix (``checkpoints/samba_pretrained.pt`` -> ``checkpoints/samba_pretrained/``)
so callers written for the one-file layout keep working; :func:`convert_legacy` turns a one-file
checkpoint into a folder.

Fine-tuned classifiers (``samba finetune``) use the same machinery: :func:`save_finetuned` /
:func:`load_finetuned_state` write ``finetuned.safetensors`` + ``finetuned.json`` into the run folder.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch

from .errors import SambaError

__all__ = ["save_model", "load_model", "load_checkpoint", "convert_legacy", "save_finetuned",
           "load_finetuned_state", "write_manifest", "verify_files", "read_verified", "atomic_write_bytes",
           "CheckpointError"]

FORMAT = "samba-model"
VERSION = 2
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
MANIFEST = "manifest.json"
FINETUNED_WEIGHTS = "finetuned.safetensors"
FINETUNED_META = "finetuned.json"
_EXTRA = "extra/"  # prefix of tensors that belong to `extra`, not to the model


class CheckpointError(SambaError, ValueError):
    """A checkpoint that cannot be used: missing, corrupt (hash or size mismatch), wrong format or mismatched."""


# ---------------------------------------------------------------------------------------------- files
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file, fsync and rename: readers see old or new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return path


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=False, allow_nan=True) + "\n").encode()


def write_manifest(folder: str | os.PathLike, names: list[str]) -> Path:
    """``manifest.json`` with the size and sha256 of each of ``names`` (files inside ``folder``)."""
    folder = Path(folder)
    files = {}
    for name in names:
        data = (folder / name).read_bytes()
        files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    return atomic_write_bytes(folder / MANIFEST, _json_bytes({"format": "samba-manifest", "version": 1,
                                                              "files": files}))


def _manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"{folder} has no {MANIFEST}: not a complete checkpoint (interrupted save, or the "
                              "old one-file format: convert it with samba.checkpoint.convert_legacy)")
    try:
        man = json.loads(path.read_bytes())
        if man.get("format") != "samba-manifest" or man.get("version") != 1:
            raise ValueError("not a samba manifest")
        files = man["files"]
        if not isinstance(files, dict) or not all(isinstance(v, dict) and isinstance(v.get("sha256"), str)
                                                  and isinstance(v.get("size"), int) for v in files.values()):
            raise ValueError("bad file entries")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is corrupt ({type(err).__name__}); the checkpoint cannot be verified") from None
    return files


def read_verified(folder: str | os.PathLike, name: str, files: dict | None = None) -> bytes:
    """The bytes of ``folder/name`` after checking its size and sha256 against the manifest."""
    folder = Path(folder)
    files = _manifest(folder) if files is None else files
    if name not in files:
        raise CheckpointError(f"{folder / name} is not listed in {folder / MANIFEST}; the checkpoint is incomplete")
    path, want = folder / name, files[name]
    try:
        size = path.stat().st_size
    except OSError:
        raise CheckpointError(f"{path} is missing; the checkpoint is incomplete") from None
    if size != want["size"]:  # cheap test first: a truncated file is never hashed
        raise CheckpointError(f"{path} is corrupt: {size} bytes, the manifest says {want['size']}")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != want["sha256"]:
        raise CheckpointError(f"{path} is corrupt: its sha256 differs from the manifest's")
    return data


def verify_files(folder: str | os.PathLike) -> list[str]:
    """Check every file listed in ``folder``'s manifest; returns their names or raises CheckpointError."""
    files = _manifest(Path(folder))
    for name in files:
        read_verified(folder, name, files)
    return sorted(files)


def write_folder(folder: str | os.PathLike, contents: dict[str, bytes]) -> Path:
    """Write ``{name: bytes}`` and a manifest into ``folder``, replacing it atomically (old kept until done)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.new")
    old = folder.with_name(f".{folder.name}.{os.getpid()}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)  # left by a killed writer of the same pid: os.replace needs it gone
    tmp.mkdir()
    try:
        for name, data in contents.items():
            with open(tmp / name, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        write_manifest(tmp, list(contents))
        verify_files(tmp)  # what is on disk is what we meant to write
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
        _fsync_dir(folder.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return folder


# ---------------------------------------------------------------------------------------------- tensors
def _split_tensors(obj, prefix: str, tensors: dict):
    """``obj`` with every tensor replaced by a ``{"__tensor__": name}`` placeholder (stored in ``tensors``)."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        return {str(k): _split_tensors(v, f"{prefix}/{k}", tensors) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_split_tensors(v, f"{prefix}/{i}", tensors) for i, v in enumerate(obj)]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy arrays / scalars -> lists
        return obj.tolist()
    return obj


def _join_tensors(obj, tensors: dict):
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        return {k: _join_tensors(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join_tensors(v, tensors) for v in obj]
    return obj


def _state_bytes(state_dict: dict, extra_tensors: dict) -> bytes:
    from safetensors.torch import save

    out = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    out.update(extra_tensors)
    return save(out)


def _load_tensors(data: bytes, where: Path) -> dict:
    from safetensors.torch import load

    try:
        return load(data)
    except Exception as err:  # noqa: BLE001 - a verified file that still does not parse
        raise CheckpointError(f"{where} is not a readable safetensors file ({type(err).__name__})") from None


def _load_json(data: bytes, where: Path) -> dict:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(f"{where} is not valid JSON") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{where} does not hold a JSON object")
    return obj


def _folder_of(path) -> Path:
    path = Path(path)
    return path.with_suffix("") if path.suffix == ".pt" else path


# ---------------------------------------------------------------------------------------------- models
def save_model(path, model, extra: dict | None = None) -> Path:
    """Save ``model`` (a :class:`samba.SAMBA`) with its config and ``extra`` metadata; returns the folder."""
    tensors: dict = {}
    extra_json = _split_tensors(dict(extra or {}), _EXTRA.rstrip("/"), tensors)
    config = {"format": FORMAT, "version": VERSION, "config": model.cfg.to_dict(), "extra": extra_json}
    return write_folder(_folder_of(path), {WEIGHTS: _state_bytes(model.state_dict(), tensors),
                                           CONFIG: _json_bytes(config)})


def load_checkpoint(path, map_location="cpu") -> dict:
    """Verify and read a checkpoint folder without building the model: ``{"config", "state_dict", "extra"}``."""
    given = Path(path)
    folder = _folder_of(given)
    if not folder.is_dir():
        if given.is_file() and (given.parent / MANIFEST).is_file():
            raise CheckpointError(f"{given} is one file of the checkpoint folder {given.parent}; pass the folder")
        if given.is_file() and given.suffix == ".pt":
            raise CheckpointError(f"{given} is a one-file checkpoint of the old format, which is not loaded because "
                                  "it could run code; convert it once with samba.checkpoint.convert_legacy")
        if given.is_file():
            raise CheckpointError(f"{given} is not a SAMBA checkpoint: pass a checkpoint folder (it holds "
                                  f"{CONFIG}, {WEIGHTS} and {MANIFEST})")
        raise CheckpointError(f"checkpoint not found: {folder}")
    files = _manifest(folder)
    config = _load_json(read_verified(folder, CONFIG, files), folder / CONFIG)
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{folder} is not a SAMBA model checkpoint (format={config.get('format')!r})")
    if not isinstance(config.get("version"), int) or config["version"] > VERSION:
        raise CheckpointError(f"{folder} has checkpoint version {config.get('version')!r}; this samba reads "
                              f"<= {VERSION}: upgrade samba")
    if not isinstance(config.get("config"), dict):
        raise CheckpointError(f"{folder / CONFIG} lacks the model 'config'")
    tensors = _load_tensors(read_verified(folder, WEIGHTS, files), folder / WEIGHTS)
    if map_location is not None:
        tensors = {k: v.to(map_location) for k, v in tensors.items()}
    state = {k: v for k, v in tensors.items() if not k.startswith(_EXTRA)}
    try:
        extra = _join_tensors(config.get("extra") or {}, tensors)
    except KeyError as err:
        raise CheckpointError(f"{folder}: extra tensor {err} is missing from {WEIGHTS}") from None
    return {"format": FORMAT, "version": config["version"], "config": config["config"], "state_dict": state,
            "extra": extra, "path": str(folder)}


def load_model(path, map_location="cpu", config_overrides: dict | None = None):
    """Build the model from a checkpoint folder: returns ``(model, extra)``.

    ``config_overrides`` may change run-time options that do not touch parameters (e.g.
    ``{"backend": "torch"}``); a state dict that does not fit the config raises
    :class:`CheckpointError` naming the missing / unexpected / mis-shaped tensors.
    """
    from .model import SAMBA, SAMBAConfig

    obj = load_checkpoint(path, map_location=map_location)
    folder = obj["path"]
    cfg_dict = dict(obj["config"])
    cfg_dict.update(config_overrides or {})
    try:
        cfg = SAMBAConfig.from_dict(cfg_dict)
        model = SAMBA(cfg)  # a value the config parser lets through can still fail here (a width of 0 ...)
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError, AssertionError) as e:
        raise CheckpointError(f"{folder}: its config cannot build a SAMBA model with this samba version "
                              f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from e
    check_state_dict(model.state_dict(), obj["state_dict"], folder)
    model.load_state_dict(obj["state_dict"])
    return model, obj["extra"]


def weights_sha256(path) -> str:
    """sha256 of a checkpoint's weights file (``model.safetensors`` of a folder, or the file itself): the
    number the model card and ``results/evaluation.json`` publish, which ``sha256sum`` reproduces."""
    from .data.registry import sha256sum

    path = Path(path)
    return sha256sum(path / WEIGHTS if path.is_dir() else path)


def check_state_dict(own: dict, sd: dict, where) -> None:
    """CheckpointError naming missing / unexpected / mis-shaped tensors when ``sd`` does not fit ``own``."""
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = sorted(k for k in set(own) & set(sd) if own[k].shape != sd[k].shape)
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{where}: weights do not match the config: missing={missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected={unexpected[:5]}{'...' if len(unexpected) > 5 else ''}, "
            f"shape mismatch={[(k, tuple(sd[k].shape), tuple(own[k].shape)) for k in shapes[:5]]}")


def convert_legacy(pt_path, out=None) -> Path:
    """Convert a one-file ``torch.save`` checkpoint (format 1) into a checkpoint folder; returns the folder.

    The old file is read with ``torch.load(weights_only=True)`` (tensors and plain values only, no code),
    checked, and written as safetensors + JSON + manifest at ``out`` (default: the path without ``.pt``).
    """
    from .model import SAMBA, SAMBAConfig

    pt_path = Path(pt_path)
    try:
        obj = torch.load(pt_path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - corrupt or not a weights-only file
        raise CheckpointError(f"{pt_path} is not a readable one-file checkpoint ({type(err).__name__})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or "state_dict" not in obj:
        raise CheckpointError(f"{pt_path} is not a SAMBA one-file model checkpoint")
    model = SAMBA(SAMBAConfig.from_dict(obj["config"]))
    check_state_dict(model.state_dict(), obj["state_dict"], pt_path)
    model.load_state_dict(obj["state_dict"])
    return save_model(out if out is not None else _folder_of(pt_path), model, extra=obj.get("extra") or {})


# ---------------------------------------------------------------------------------------------- classifiers
def save_finetuned(folder, state_dict: dict, meta: dict) -> Path:
    """Write a fine-tuned classifier into ``folder`` (a run folder that may hold other outputs).

    ``finetuned.safetensors`` (weights + any tensors inside ``meta``), ``finetuned.json`` (``meta``: plain
    values) and ``manifest.json``; each file atomically, the manifest last, so a reader never sees new
    weights with an old manifest that verifies.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict = {}
    meta_json = _split_tensors(dict(meta), _EXTRA.rstrip("/"), tensors)
    (folder / MANIFEST).unlink(missing_ok=True)  # the old manifest must not vouch for half-replaced files
    atomic_write_bytes(folder / FINETUNED_WEIGHTS, _state_bytes(state_dict, tensors))
    atomic_write_bytes(folder / FINETUNED_META, _json_bytes(meta_json))
    write_manifest(folder, [FINETUNED_WEIGHTS, FINETUNED_META])
    verify_files(folder)
    return folder


def load_finetuned_state(path, map_location="cpu") -> tuple[dict, dict]:
    """``(state_dict, meta)`` of a folder written by :func:`save_finetuned`, verified against its manifest."""
    path = Path(path)
    folder = path.parent if path.is_file() or path.suffix in (".pt", ".json", ".safetensors") else path
    if not (folder / FINETUNED_META).exists():
        if (folder / "finetuned.pt").is_file():
            raise CheckpointError(f"{folder} holds a fine-tuned model in the old one-file format, which is not "
                                  "loaded because it could run code; fine-tune again to write the new format")
        raise CheckpointError(f"no fine-tuned model in {folder} (expected a folder written by `samba finetune`)")
    files = _manifest(folder)
    meta = _load_json(read_verified(folder, FINETUNED_META, files), folder / FINETUNED_META)
    tensors = _load_tensors(read_verified(folder, FINETUNED_WEIGHTS, files), folder / FINETUNED_WEIGHTS)
    if map_location is not None:
        tensors = {k: v.to(map_location) for k, v in tensors.items()}
    state = {k: v for k, v in tensors.items() if not k.startswith(_EXTRA)}
    try:
        meta = _join_tensors(meta, tensors)
    except KeyError as err:
        raise CheckpointError(f"{folder}: tensor {err} is missing from {FINETUNED_WEIGHTS}") from None
    return state, meta
