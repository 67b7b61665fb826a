"""Readers: every source file becomes an ``mne.io.Raw`` with EEG channels only, canonical 10-05 names,
volts, and its events/labels as MNE annotations.

Dataset quirks handled here (the registry, `samba data list`, names each source):
- EEGMMIDB EDF+: dotted names ("Fc5.") -> "FC5"; annotations T0 rest, T1/T2 (meaning depends on the run).
- EEGMAT EDF: "EEG Fp1" names and old 10-20 aliases (T3 -> T7); "EEG A2-A1" and "ECG ECG" are not scalp EEG
  and are dropped.
- UCI Eye State CSV: microvolts with a ~4000 uV DC offset and a few samples of 1e5 uV spikes; column "P" is
  P7; per-sample label ``class`` (0 open, 1 closed) -> annotations "eyes_open" / "eyes_closed".
- Muse CSV: timestamps in seconds, TP9 AF7 AF8 TP10, "Right AUX" dropped; column "Marker*" 1 = non-target,
  2 = target stimulus onset -> annotations "nontarget" / "target". The sampling rate is estimated from the
  timestamps (they are rounded to 1 ms, so the median step is useless: we use the span).
- EEGLAB .set: channel positions come from the file (``samba.montage.positions_from_info``).
- FIF (YASA): mastoid-referenced derivations "F4-A1" / "CZ-A2" are named after their active electrode
  (``samba.montage.normalize_name`` drops ear/mastoid reference suffixes).

``read_raw(path, montage=None)`` reads any MNE-readable file (plus the two CSV layouts) for users who bring
their own headset.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import mne
import numpy as np
import pandas as pd
from samba.errors import SambaError

from samba.errors import InputError, SambaError

log = logging.getLogger(__name__)

EYE_STATE_CHANNELS = ("AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4", "F8", "AF4")
MUSE_CHANNELS = ("TP9", "AF7", "AF8", "TP10")
_NON_EEG_EEGMAT = ("EEG A2-A1", "ECG ECG")


class CorruptFileError(InputError):
    """A file that cannot be parsed (truncated, wrong format, inconsistent header); a ``ValueError`` too."""


class MissingFileError(SambaError, FileNotFoundError):
    """The file to read does not exist."""


def _montage():
    # Imported lazily: samba.montage is a sibling module owned by another engineer.
    from samba import montage

    return montage


def normalize_names(names) -> list[str]:
    """Canonical 10-05 names via ``samba.montage.normalize_name`` (raises ValueError on unknown names)."""
    return [_montage().normalize_name(n) for n in names]


def _rename_canonical(raw: mne.io.BaseRaw, on_unknown: str = "raise") -> mne.io.BaseRaw:
    """Rename channels to canonical names. Unknown names: ``on_unknown`` = "raise", "drop" (logged, counted)
    or "keep" (for files whose channels carry their own locations)."""
    mapping, unknown = {}, []
    for name in raw.ch_names:
        try:
            mapping[name] = _montage().normalize_name(name)
        except (ValueError, KeyError):
            unknown.append(name)
    if unknown and on_unknown != "keep":
        if on_unknown == "raise":
            raise InputError(
                f"unknown channel name(s) {unknown}: not 10-05 electrodes; pass montage= to read_raw, "
                "rename them, or use on_unknown='drop'"
            )
        if len(unknown) == len(raw.ch_names):
            raise InputError(f"no channel has a 10-05 name or a location ({unknown[:3]}...); pass montage= to read_raw")
        log.warning("dropping %d channel(s) with unknown names: %s", len(unknown), unknown)
        raw.drop_channels(unknown)
    dup = {v for v in mapping.values() if list(mapping.values()).count(v) > 1}
    if dup:
        raise InputError(f"channel names collide after normalisation: {sorted(dup)}")
    raw.rename_channels({k: v for k, v in mapping.items() if k in raw.ch_names and k != v})
    return raw


def _check_readable(path: Path) -> None:
    if not path.is_file():
        raise MissingFileError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise CorruptFileError(f"{path}: empty file")


def _mne_read(reader, path: Path, kind: str) -> mne.io.BaseRaw:
    """``reader(path)`` (an ``mne.io.read_raw_*``) fully loaded; any failure -> CorruptFileError naming ``kind``."""
    _check_readable(path)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*annotation.*outside the data range.*")
            return reader(path, preload=True, verbose="ERROR")
    except Exception as err:
        raise CorruptFileError(f"{path}: cannot read as {kind} ({type(err).__name__}: {err})") from err


_PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, RuntimeError, UnicodeError,
                 pd.errors.ParserError, EOFError)


def _file_reader(fn):
    """Any failure to parse the file becomes a CorruptFileError naming it (garbled input: one clear line)."""
    import functools

    @functools.wraps(fn)
    def read(path, *args, **kwargs):
        try:
            return fn(path, *args, **kwargs)
        except SambaError:
            raise
        except _PARSE_ERRORS as err:
            raise CorruptFileError(f"{path}: cannot read this file ({type(err).__name__}: {err})") from err

    return read


def _read_edf(path: Path) -> mne.io.BaseRaw:
    raw = _mne_read(mne.io.read_raw_edf, path, "EDF/EDF+")
    _check_edf_size(path, raw)
    return raw


def _check_edf_size(path: Path, raw: mne.io.BaseRaw) -> None:
    """A truncated EDF is silently shortened by some readers; compare the header's record count to the size."""
    with open(path, "rb") as fh:
        head = fh.read(256)
    try:
        header_bytes = int(head[184:192].decode("ascii").strip())
        n_records = int(head[236:244].decode("ascii").strip())
        n_signals = int(head[252:256].decode("ascii").strip())
        fh_samples = []
        with open(path, "rb") as fh:
            fh.seek(256 + n_signals * 216)
            fh_samples = [int(fh.read(8).decode("ascii").strip()) for _ in range(n_signals)]
    except (ValueError, UnicodeDecodeError) as err:
        raise CorruptFileError(f"{path}: malformed EDF header ({err})") from err
    if n_records <= 0:
        return  # unknown length (-1) is legal during recording; nothing to compare
    expected = header_bytes + n_records * sum(fh_samples) * 2
    actual = path.stat().st_size
    if actual < expected:
        raise CorruptFileError(
            f"{path}: truncated EDF: header promises {n_records} records ({expected} bytes), file has {actual} bytes"
        )


@_file_reader
def read_eegmmidb(path: str | os.PathLike) -> mne.io.BaseRaw:
    """EEGMMIDB EDF+ (64 ch, 160 Hz). Annotations T0/T1/T2 kept as is."""
    raw = _read_edf(Path(path))
    mne.datasets.eegbci.standardize(raw)  # "Fc5." -> "FC5"
    raw.set_channel_types({n: "eeg" for n in raw.ch_names})
    return _rename_canonical(raw)


@_file_reader
def read_eegmat(path: str | os.PathLike) -> mne.io.BaseRaw:
    """EEGMAT EDF (19 EEG + A2-A1 + ECG, 500 Hz). Non-EEG channels dropped."""
    raw = _read_edf(Path(path))
    drop = [n for n in _NON_EEG_EEGMAT if n in raw.ch_names]
    raw.drop_channels(drop)
    raw.set_annotations(None)  # only a "[Total time]" marker
    raw.rename_channels({n: n.removeprefix("EEG ").strip() for n in raw.ch_names})
    return _rename_canonical(raw)


@_file_reader
def read_eye_state_csv(path: str | os.PathLike) -> mne.io.BaseRaw:
    """UCI EEG Eye State CSV (14 ch Emotiv, 128 Hz, uV) with eye-state annotations.

    The DC offset and spikes are left in: ``preprocess`` removes the offset and clips spikes robustly.
    """
    path = Path(path)
    df = _read_csv(path)
    df = df.rename(columns={"P": "P7"})
    missing = [c for c in (*EYE_STATE_CHANNELS, "class") if c not in df.columns]
    if missing:
        raise CorruptFileError(f"{path}: Eye State CSV lacks column(s) {missing}")
    data = df[list(EYE_STATE_CHANNELS)].to_numpy(dtype=np.float64).T * 1e-6  # uV -> V
    info = mne.create_info(list(EYE_STATE_CHANNELS), 128.0, "eeg")
    raw = mne.io.RawArray(data, info, verbose="ERROR")
    label = df["class"].to_numpy()
    raw.set_annotations(_segments_to_annotations(label, 128.0, {0: "eyes_open", 1: "eyes_closed"}))
    return _rename_canonical(raw)


def _read_csv(path: Path) -> pd.DataFrame:
    """A readable, parseable CSV as a DataFrame, or CorruptFileError naming the file."""
    _check_readable(path)
    try:
        return pd.read_csv(path)
    except Exception as err:
        raise CorruptFileError(f"{path}: cannot parse CSV ({err})") from err


def _segments_to_annotations(label: np.ndarray, sfreq: float, names: dict) -> mne.Annotations:
    change = np.flatnonzero(np.diff(label)) + 1
    starts = np.r_[0, change]
    stops = np.r_[change, len(label)]
    return mne.Annotations(
        onset=starts / sfreq, duration=(stops - starts) / sfreq, description=[names[int(label[s])] for s in starts]
    )


@_file_reader
def read_muse_csv(path: str | os.PathLike) -> mne.io.BaseRaw:
    """Muse CSV (timestamps, TP9, AF7, AF8, TP10, Right AUX, Marker*) with stimulus annotations."""
    path = Path(path)
    df = _read_csv(path)
    marker_cols = [c for c in df.columns if c.lower().startswith("marker")]
    missing = [c for c in ("timestamps", *MUSE_CHANNELS) if c not in df.columns]
    if missing or not marker_cols:
        raise CorruptFileError(f"{path}: Muse CSV lacks column(s) {missing or ['Marker']}")
    t = df["timestamps"].to_numpy(dtype=np.float64)
    if len(t) < 2 or not np.all(np.isfinite(t)) or t[-1] <= t[0]:
        raise CorruptFileError(f"{path}: timestamps are missing or not increasing")
    sfreq = float(np.round((len(t) - 1) / (t[-1] - t[0])))  # timestamps are rounded to 1 ms
    gaps = int((np.diff(t) > 3.0 / sfreq).sum())
    if gaps:  # samples were lost: event times after a gap are shifted by the missing samples
        log.warning("%s: %d gap(s) in the timestamps (longest %.3f s); sample-index timing assumed",
                    path, gaps, float(np.diff(t).max()))
    data = df[list(MUSE_CHANNELS)].to_numpy(dtype=np.float64).T * 1e-6
    raw = mne.io.RawArray(data, mne.create_info(list(MUSE_CHANNELS), sfreq, "eeg"), verbose="ERROR")
    marker = df[marker_cols[0]].fillna(0).to_numpy().astype(int)
    idx = np.flatnonzero(np.isin(marker, (1, 2)))
    raw.set_annotations(
        mne.Annotations(
            onset=idx / sfreq, duration=np.zeros(len(idx)),
            description=["target" if marker[i] == 2 else "nontarget" for i in idx],
        )
    )
    return _rename_canonical(raw)


@_file_reader
def read_eeglab(path: str | os.PathLike) -> mne.io.BaseRaw:
    """EEGLAB .set (+ .fdt). Names are kept; positions come from the file when it has them."""
    raw = _mne_read(mne.io.read_raw_eeglab, Path(path), "EEGLAB")
    return _rename_canonical(raw, on_unknown="keep")


@_file_reader
def read_fif(path: str | os.PathLike) -> mne.io.BaseRaw:
    """FIF raw file; referential derivations to a mastoid/ear ("F4-A1") take their active electrode's name."""
    raw = _mne_read(mne.io.read_raw_fif, Path(path), "FIF")
    raw.pick("eeg")
    return _rename_canonical(raw)  # normalize_name drops ear/mastoid references: "F4-A1" -> "F4"


READERS = {
    "eegmmidb": read_eegmmidb,
    "eegmat": read_eegmat,
    "eye_state_csv": read_eye_state_csv,
    "muse_csv": read_muse_csv,
    "eeglab": read_eeglab,
    "fif": read_fif,
}


@_file_reader
def read_raw(path: str | os.PathLike, montage=None, on_unknown: str = "raise") -> mne.io.BaseRaw:
    """Read any MNE-readable EEG file (EDF/BDF/GDF/BrainVision/EEGLAB/FIF/...) or a Muse/Eye-State CSV.

    ``montage``: None (names must be 10-05 electrodes, resolved by samba.montage), an ``mne`` montage or
    montage name (e.g. "standard_1005"; positions then come from it), or a device preset name from
    ``samba.montage.DEVICE_PRESETS`` (channels are renamed, in order, to the preset's names).
    Non-EEG channels (EOG, ECG, stim, misc) are dropped.
    """
    path = Path(path)
    _check_readable(path)
    if path.suffix.lower() == ".csv":
        with path.open(errors="replace") as fh:
            head = fh.readline()
        raw = read_muse_csv(path) if "timestamps" in head else read_eye_state_csv(path)
        return raw
    if path.suffix.lower() == ".edf":
        raw = _read_edf(path)
    elif path.suffix.lower() == ".bdf":
        raw = _mne_read(mne.io.read_raw_bdf, path, "BDF")
    else:
        raw = _mne_read(mne.io.read_raw, path, "an MNE-readable recording")
    picks = mne.pick_types(raw.info, eeg=True, exclude=[])
    if len(picks) == 0:
        raise InputError(f"{path}: no EEG channels")
    raw.pick(picks)
    if montage is None:  # channels that carry their own location may keep a non-standard name
        return _rename_canonical(raw, on_unknown="keep" if _has_locations(raw) else on_unknown)
    presets = getattr(_montage(), "DEVICE_PRESETS", {})
    if isinstance(montage, str) and montage in presets:
        names = list(presets[montage])
        if len(names) != len(raw.ch_names):
            raise InputError(f"device preset {montage!r} has {len(names)} channels, file has {len(raw.ch_names)}")
        raw.rename_channels(dict(zip(raw.ch_names, names)))
        return _rename_canonical(raw, on_unknown=on_unknown)
    mont = mne.channels.make_standard_montage(montage) if isinstance(montage, str) else montage
    raw.set_montage(mont, on_missing="raise" if on_unknown == "raise" else "warn")
    return raw


def _has_locations(raw: mne.io.BaseRaw) -> bool:
    locs = np.array([ch["loc"][:3] for ch in raw.info["chs"]], dtype=float)
    return bool(np.all(np.isfinite(locs)) and np.all(np.linalg.norm(locs, axis=1) > 1e-6))


def channel_positions(raw: mne.io.BaseRaw) -> np.ndarray:
    """(C, 3) float32 positions: from the file's digitisation when present, else from the names."""
    m = _montage()
    locs = np.array([ch["loc"][:3] for ch in raw.info["chs"]], dtype=float)
    if np.isfinite(locs).all(1).any() and np.any(np.nan_to_num(locs) != 0):  # some channels are located
        return np.asarray(m.positions_from_info(raw.info), dtype=np.float32)
    return np.asarray(m.positions(raw.ch_names), dtype=np.float32)
