"""On-disk cache of preprocessed recordings, so a second load reads no EDF.

One entry per (file sha256, reader, preprocessing parameters, ``CODE_VERSION``):
``<key>.npy`` holds the (C, T) float32 signal, read back with ``np.load(mmap_mode="r")``, and
``<key>.json`` the channel names, events and preprocessing report. Both are written to a temporary file
and moved into place with ``os.replace``; the JSON is written last, so an entry without it is incomplete
and ignored. Bump ``CODE_VERSION`` whenever readers or preprocessing change their output.

Location: the ``cache_dir`` argument, else ``$SAMBA_CACHE_DIR``, else ``<$SAMBA_DATA_DIR or ~/.cache/samba>/preprocessed``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .preprocess import Preprocessing, Recording
from .registry import cache_root

log = logging.getLogger(__name__)

CODE_VERSION = "1"


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get("SAMBA_CACHE_DIR")
    return Path(env).expanduser() if env else cache_root() / "preprocessed"


def cache_key(file_sha256: str, reader: str, params: Preprocessing) -> str:
    text = "|".join([file_sha256, reader, params.key(), CODE_VERSION])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _atomic_write(target: Path, write: Callable[[Path], None]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(key: str, directory: Path) -> Recording | None:
    meta_path, data_path = directory / f"{key}.json", directory / f"{key}.npy"
    if not (meta_path.is_file() and data_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        data = np.load(data_path, mmap_mode="r", allow_pickle=False)  # a crafted .npy cannot run code
        if data.ndim != 2 or data.shape[0] != len(meta["ch_names"]) or data.dtype != np.float32:
            raise ValueError(f"signal of shape {data.shape} / {data.dtype} does not fit its metadata")
    except (ValueError, OSError, KeyError, TypeError, UnicodeDecodeError) as err:
        log.warning("ignoring unreadable cache entry %s (%s)", key, err)  # recomputed from the source file
        return None
    events = pd.DataFrame(meta["events"], columns=["onset_s", "duration_s", "description"])
    pos = None if meta.get("positions") is None else np.asarray(meta["positions"], dtype=np.float32)
    return Recording(data, float(meta["sfreq"]), list(meta["ch_names"]), events, meta["report"], pos)


def save(key: str, directory: Path, rec: Recording) -> None:
    def write_npy(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(rec.data, dtype=np.float32))

    def write_json(tmp: Path) -> None:
        meta = {
            "sfreq": rec.sfreq, "ch_names": rec.ch_names, "report": rec.report, "code_version": CODE_VERSION,
            "positions": None if rec.positions is None else np.asarray(rec.positions, dtype=float).tolist(),
            "events": rec.events[["onset_s", "duration_s", "description"]].values.tolist(),
        }
        tmp.write_text(json.dumps(meta))

    _atomic_write(directory / f"{key}.npy", write_npy)
    _atomic_write(directory / f"{key}.json", write_json)


def cached_recording(
    file_sha256: str, reader: str, params: Preprocessing, make: Callable[[], Recording],
    directory: str | os.PathLike | None = None, use_cache: bool = True,
) -> Recording:
    """The cached preprocessed recording, computing and storing it with ``make()`` on a miss."""
    if not use_cache:
        return make()
    where = cache_dir(directory)
    key = cache_key(file_sha256, reader, params)
    rec = load(key, where)
    if rec is not None:
        return rec
    rec = make()
    try:
        save(key, where, rec)
    except OSError as err:  # a read-only cache must not stop loading
        log.warning("could not write cache entry in %s: %s", where, err)
        return rec
    return load(key, where) or rec


def export_entries(dst: str | os.PathLike, directory: str | os.PathLike | None = None,
                   dtype: str = "float16") -> tuple[int, int]:
    """Copy every complete cache entry to ``dst``, signals cast to ``dtype`` (default half precision).

    For moving preprocessed data to a compute node that has no copy of the raw recordings (the raw
    mirror of this project is 150 MB; its half-precision cache at 128 Hz is about a quarter of that).
    Values are robust-scaled and clipped to +-10, so float16 keeps them to about 0.005. Returns
    ``(entries, bytes written)``. Restore with :func:`import_entries`.
    """
    src, dst = cache_dir(directory), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    n = size = 0
    for meta in sorted(src.glob("*.json")):
        data = src / (meta.stem + ".npy")
        if not data.is_file():
            continue
        arr = np.load(data, mmap_mode="r")
        np.save(dst / data.name, np.asarray(arr, dtype=dtype))
        (dst / meta.name).write_text(meta.read_text())
        n += 1
        size += (dst / data.name).stat().st_size + meta.stat().st_size
    return n, size


def import_entries(src: str | os.PathLike, directory: str | os.PathLike | None = None) -> int:
    """Install entries written by :func:`export_entries` into the cache as float32 (atomically)."""
    src, where = Path(src), cache_dir(directory)
    n = 0
    for meta in sorted(src.glob("*.json")):
        data = src / (meta.stem + ".npy")
        if not data.is_file():
            continue
        arr = np.ascontiguousarray(np.load(data, allow_pickle=False), dtype=np.float32)

        def write_npy(tmp: Path, arr=arr) -> None:
            with open(tmp, "wb") as fh:
                np.save(fh, arr)

        _atomic_write(where / data.name, write_npy)
        _atomic_write(where / meta.name, lambda tmp, meta=meta: tmp.write_text(meta.read_text()))
        n += 1
    return n
