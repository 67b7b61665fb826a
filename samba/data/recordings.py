"""Registry file -> verified local path -> reader -> preprocessing -> cached ``Recording``.

Also parses each dataset's file naming into (subject, session, run), the description every window carries.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass

from . import cache, readers, registry
from .preprocess import Preprocessing, Recording, preprocess

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileId:
    dataset: str
    subject: int
    session: int
    run: int
    path: str  # dataset-relative registry path


def parse_id(f: registry.FileEntry) -> FileId | None:
    """(subject, session, run) from a registry path; None for files that are not recordings."""
    p = f.path
    if f.dataset == "eegmmidb":
        m = re.fullmatch(r"S(\d{3})/S\d{3}R(\d{2})\.edf", p)
        return FileId(f.dataset, int(m[1]), 1, int(m[2]), p) if m else None
    if f.dataset == "eegmat":
        m = re.fullmatch(r"Subject(\d{2})_([12])\.edf", p)
        return FileId(f.dataset, int(m[1]), 1, int(m[2]), p) if m else None
    if f.dataset == "eeg_eye_state":
        return FileId(f.dataset, 1, 1, 1, p) if p.endswith(".csv") else None
    if f.dataset == "muse_p300":
        m = re.fullmatch(r"subject(\d+)/session(\d+)/.+\.csv", p)
        if not m:
            return None
        in_session = sorted(x.path for x in registry.files("muse_p300") if x.path.startswith(p.rsplit("/", 1)[0] + "/"))
        return FileId(f.dataset, int(m[1]), int(m[2]), in_session.index(p) + 1, p)
    if f.dataset == "eeglab_sample":
        return FileId(f.dataset, 1, 1, 1, p) if p.endswith(".set") else None
    if f.dataset == "yasa":
        return FileId(f.dataset, 1, 1, 1, p) if p.endswith(".fif") else None
    return None


def recording_files(dataset: str) -> list[tuple[registry.FileEntry, FileId]]:
    out = []
    for f in registry.files(dataset):
        fid = parse_id(f)
        if fid is not None:
            out.append((f, fid))
    return out


def companions(f: registry.FileEntry) -> list[str]:
    """Other registry files a reader needs next to ``f`` (EEGLAB .fdt)."""
    if f.dataset == "eeglab_sample" and f.path.endswith(".set"):
        return [f.path[:-4] + ".fdt"]
    return []


def is_cached(f: registry.FileEntry, params: Preprocessing = Preprocessing(),
              cache_dir: str | os.PathLike | None = None) -> bool:
    """Whether a complete preprocessed cache entry exists for ``f`` (then no raw file is needed)."""
    reader = registry.dataset_info(f.dataset)["reader"]
    key = cache.cache_key(f.sha256, reader, params)
    where = cache.cache_dir(cache_dir)
    return (where / f"{key}.json").is_file() and (where / f"{key}.npy").is_file()


def load_recording(
    f: registry.FileEntry, mirror: str | os.PathLike | None = None, params: Preprocessing = Preprocessing(),
    cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
) -> Recording:
    """Fetch (sha256-verified), read and preprocess one registry recording, through the on-disk cache.

    The cache is consulted first: its key is the registry's sha256 of the file, and entries are only ever
    written from files that passed that check, so a cache hit needs no raw file at all (a compute node
    can train from a copied cache, see ``samba.data.cache.export_entries``).
    """
    reader = registry.dataset_info(f.dataset)["reader"]
    if use_cache:
        hit = cache.load(cache.cache_key(f.sha256, reader, params), cache.cache_dir(cache_dir))
        if hit is not None:
            return hit
    path = registry.fetch(f.dataset, f.path, mirror=mirror)
    for extra in companions(f):
        registry.fetch(f.dataset, extra, mirror=mirror)

    def make() -> Recording:
        raw = readers.READERS[reader](path)
        rec = preprocess(raw, params, source=f.relpath)
        try:
            rec.positions = readers.channel_positions(raw.pick(rec.ch_names))
        except ValueError as err:  # e.g. "EEG 000" names without locations: kept, but cannot be placed
            rec.report["positions_error"] = str(err)
        return rec

    return cache.cached_recording(f.sha256, reader, params, make, cache_dir, use_cache)
