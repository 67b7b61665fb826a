"""Your own recording: any file MNE reads (or a plain CSV) -> EEG channels placed on the head.

    >>> from samba.data.user import open_recording, preprocess_recording
    >>> rec = open_recording("night.edf")          # lazy: nothing but the header is read yet
    >>> rec.ch_names, rec.positions.shape          # canonical 10-05 names, (C, 3) metres, MNE head frame
    >>> prep = preprocess_recording(rec)            # the pretraining pipeline (samba.data.preprocess)

Formats, by file suffix: EDF/EDF+ (``.edf``), BDF (``.bdf``), GDF (``.gdf``), BrainVision (``.vhdr``),
EEGLAB (``.set``), FIF (``.fif``, ``.fif.gz``), Neuroscan CNT (``.cnt``), and CSV (``.csv``, below).
Everything but CSV is opened with ``preload=False``, so a whole night is never read at once: the
embedding reads it chunk by chunk (``samba.embedding``).

**CSV layout.** A header row, then one row per sample. The first column is the time in seconds when it is
named ``time``, ``time_s``, ``timestamp`` or ``timestamps`` (the sampling rate is then its span / count);
otherwise pass ``sfreq=``. Every other column is one channel, named by its electrode (``Fp1``, ``T3``,
``EEG Cz-REF`` ...), in microvolts. Non-numeric columns and columns whose name is no electrode are dropped.

**Which channels are kept.** EEG channels with a known position: from the file's montage when it carries
locations (``samba.montage.positions_from_info`` aligns them to the head frame), else from the channel name
(``samba.montage.positions``, which knows the old aliases T3/T5, EEGMMIDB's dotted names, ``EEG `` prefixes
and ear/mastoid reference suffixes). Channels of another type (EOG, ECG, EMG, stim, misc, aux ...), channels
named like one (``ECG ...``, ``Status``, ``TRIG`` ...) and channels with no known position are dropped, and
one log line names them all.

Every problem a user can fix (unknown format, unreadable file, no placeable EEG channel, too short a
recording, a CSV without a sampling rate) raises :class:`samba.errors.InputError` with one line naming it.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import mne
import numpy as np

from ..errors import InputError
from .preprocess import Preprocessing, Recording, preprocess

log = logging.getLogger(__name__)

#: file suffix -> MNE reader (all accept ``preload=False``).
READERS = {
    ".edf": mne.io.read_raw_edf, ".bdf": mne.io.read_raw_bdf, ".gdf": mne.io.read_raw_gdf,
    ".vhdr": mne.io.read_raw_brainvision, ".set": mne.io.read_raw_eeglab, ".fif": mne.io.read_raw_fif,
    ".fif.gz": mne.io.read_raw_fif, ".cnt": mne.io.read_raw_cnt,
}
FORMATS = (*READERS, ".csv")
CSV_TIME_COLUMNS = ("time", "time_s", "timestamp", "timestamps")
#: channel types that are never scalp EEG (MNE's names)
NON_EEG_TYPES = ("eog", "ecg", "emg", "stim", "misc", "resp", "bio", "syst", "chpi", "exci", "ias", "gsr",
                 "temperature", "dbs", "seeg", "ecog")
# names that say "not EEG" even when the file types the channel as EEG (EDF types everything as EEG)
_NON_EEG_NAME = re.compile(r"^(EOG|HEOG|VEOG|ECG|EKG|EMG|STI|STIM|STATUS|TRIG|TRIGGER|EVENT|MARKER|AUX|RESP|"
                           r"PHOTIC|SPO2|PULSE|ACC|GYRO|BATTERY|X|Y|Z)(\b|[\s_\-\d])", re.IGNORECASE)


@dataclass
class UserRecording:
    """A recording restricted to EEG channels with known positions (channels renamed canonically)."""

    raw: mne.io.BaseRaw  # lazily read where the format allows (preload=False)
    positions: np.ndarray  # (C, 3) float32, metres, MNE head frame
    source: str
    dropped: dict = field(default_factory=dict)  # channel name -> why it was dropped

    @property
    def ch_names(self) -> list[str]:
        return list(self.raw.ch_names)

    @property
    def sfreq(self) -> float:
        return float(self.raw.info["sfreq"])

    @property
    def n_times(self) -> int:
        return int(self.raw.n_times)

    @property
    def duration_s(self) -> float:
        return self.n_times / self.sfreq


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".fif.gz" if name.endswith(".fif.gz") else path.suffix.lower()


def read_file(path: str | os.PathLike, sfreq: float | None = None, preload: bool = False) -> mne.io.BaseRaw:
    """The file as an ``mne.io.Raw`` (all channels, names as in the file), or one-line ``InputError``."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a folder; pass one recording file in it (samba finetune --data takes folders)")
    if not path.is_file():
        raise InputError(f"no such recording: {path}")
    suffix = _suffix(path)
    if suffix == ".csv":
        return read_csv(path, sfreq=sfreq)
    if suffix not in READERS:
        raise InputError(f"{path}: unknown recording format {suffix or '(no suffix)'!r}; samba reads "
                         f"{', '.join(FORMATS)} (convert other formats with MNE first)")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MNE's notes on annotations/filters are not the user's problem
            raw = READERS[suffix](path, preload=preload, verbose="ERROR")
    except Exception as err:  # truncated header, wrong content for the suffix, missing .fdt/.eeg sidecar ...
        raise InputError(f"{path}: cannot read as {suffix} ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from err
    if sfreq is not None and abs(float(sfreq) - raw.info["sfreq"]) > 1e-6:
        raise InputError(f"{path}: --sfreq {sfreq:g} contradicts the file's own rate {raw.info['sfreq']:g} Hz; "
                         "drop --sfreq (it is for CSV files)")
    return raw


def read_csv(path: str | os.PathLike, sfreq: float | None = None) -> mne.io.BaseRaw:
    """CSV (layout in the module docstring; values in microvolts) -> ``mne.io.RawArray`` in volts."""
    import pandas as pd

    path = Path(path)
    try:
        df = pd.read_csv(path)
    except Exception as err:
        raise InputError(f"{path}: cannot parse as CSV ({type(err).__name__}: {err})") from err
    if df.shape[0] < 2 or df.shape[1] < 1:
        raise InputError(f"{path}: CSV has no samples; expected a header row and one row per sample")
    first = str(df.columns[0]).strip().lower()
    if first in CSV_TIME_COLUMNS:
        t = pd.to_numeric(df.iloc[:, 0], errors="coerce").to_numpy(float)
        if not np.all(np.isfinite(t)) or t[-1] <= t[0]:
            raise InputError(f"{path}: the time column {df.columns[0]!r} is not increasing seconds")
        rate = (len(t) - 1) / (t[-1] - t[0])
        if sfreq is not None and abs(rate - sfreq) > 0.01 * sfreq:
            raise InputError(f"{path}: --sfreq {sfreq:g} contradicts the time column ({rate:.3f} Hz)")
        sfreq = float(sfreq if sfreq is not None else round(rate, 3))
        df = df.iloc[:, 1:]
    elif sfreq is None:
        raise InputError(f"{path}: the first column {df.columns[0]!r} is not a time column ({'/'.join(CSV_TIME_COLUMNS)}); "
                         "pass the sampling rate with --sfreq (sfreq=)")
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
    if not numeric:
        raise InputError(f"{path}: no numeric channel column in the CSV")
    data = df[numeric].to_numpy(np.float64).T * 1e-6  # (C, T) uV -> V
    info = mne.create_info([str(c).strip() for c in numeric], float(sfreq), "eeg")
    return mne.io.RawArray(data, info, verbose="ERROR")


def _located(ch: dict) -> bool:
    loc = np.asarray(ch["loc"][:3], float)
    return bool(np.isfinite(loc).all() and np.linalg.norm(loc) > 1e-6)


def select_eeg(raw: mne.io.BaseRaw, source: str = "") -> tuple[mne.io.BaseRaw, np.ndarray, dict]:
    """Keep EEG channels with a known position; returns ``(raw, positions (C, 3), dropped {name: why})``.

    ``raw`` is changed in place (picked, renamed to canonical 10-05 names, typed EEG).
    """
    from samba import montage

    where = source or "recording"
    types = raw.get_channel_types()
    dropped, rename, taken = {}, {}, set()
    for name, kind in zip(raw.ch_names, types):
        ch = raw.info["chs"][raw.ch_names.index(name)]
        if kind in NON_EEG_TYPES:
            dropped[name] = kind
            continue
        if _NON_EEG_NAME.match(name.strip().removeprefix("EEG ").strip()) and not _located(ch):
            dropped[name] = "not EEG by name"
            continue
        if montage.is_reference_derivation(name):
            dropped[name] = "one reference site against another, not scalp EEG"
            continue
        try:
            canonical = montage.normalize_name(name)
            montage.positions([canonical])
        except ValueError:
            if not _located(ch):
                dropped[name] = "no known position"
                continue
            canonical = name  # the file places it: keep its own name
        if canonical in taken:
            dropped[name] = f"duplicate of {canonical}"
            continue
        taken.add(canonical)
        rename[name] = canonical
    if not rename:
        raise InputError(f"{where}: no EEG channel with a known position among {len(raw.ch_names)} channel(s) "
                         f"({', '.join(raw.ch_names[:6])}{' ...' if len(raw.ch_names) > 6 else ''}); name channels by "
                         "10-05 electrode (Fp1, Cz, T3 ...) or add a montage to the file")
    if dropped:
        log.warning("%s: dropped %d channel(s) that are not placeable EEG: %s", where, len(dropped),
                    ", ".join(f"{n} ({why})" for n, why in dropped.items()))
    raw.pick(list(rename))
    raw.set_channel_types({n: "eeg" for n in raw.ch_names}, on_unit_change="ignore")
    raw.rename_channels({k: v for k, v in rename.items() if k != v})
    try:
        if any(_located(ch) for ch in raw.info["chs"]):
            pos = montage.positions_from_info(raw.info)
        else:
            pos = montage.positions(raw.ch_names)
    except ValueError as err:
        raise InputError(f"{where}: cannot place the channels on the head ({err})") from err
    return raw, np.asarray(pos, np.float32), dropped


def open_recording(source, sfreq: float | None = None, min_duration_s: float = 2.0) -> UserRecording:
    """A path (any format in :data:`FORMATS`) or an ``mne.io.Raw`` -> :class:`UserRecording` (lazy)."""
    if isinstance(source, mne.io.BaseRaw):
        raw, name = source.copy(), (source.filenames[0] if source.filenames and source.filenames[0] else "recording")
    else:
        from samba.paths import user_path

        path = user_path(source)
        raw, name = read_file(path, sfreq=sfreq), str(path)
    raw, pos, dropped = select_eeg(raw, str(name))
    rec = UserRecording(raw, pos, str(name), dropped)
    if rec.duration_s < min_duration_s:
        raise InputError(f"{name}: recording is {rec.duration_s:.2f} s long; need at least {min_duration_s:g} s")
    return rec


def preprocess_recording(rec: UserRecording, params: Preprocessing = Preprocessing(), start: int = 0,
                         stop: int | None = None) -> Recording:
    """Samples ``[start, stop)`` of ``rec`` through the pretraining pipeline -> ``Recording`` with positions.

    Only those samples are read from disk. Channels the pipeline drops (flat, NaN) leave their position too.
    """
    from .preprocess import BadChannelError, SamplingRateError

    stop = rec.n_times if stop is None else min(stop, rec.n_times)
    piece = rec.raw if (start, stop) == (0, rec.n_times) and rec.raw.preload else None
    if piece is None:
        data = rec.raw.get_data(start=start, stop=stop)  # (C, stop - start) volts, only this slice is read
        piece = mne.io.RawArray(data, mne.create_info(rec.ch_names, rec.sfreq, "eeg"), verbose="ERROR")
        if start == 0 and stop == rec.n_times:
            piece.set_annotations(_relative_annotations(rec.raw))
    try:
        out = preprocess(piece, params, source=rec.source)
    except (SamplingRateError, BadChannelError, ValueError) as err:
        raise InputError(str(err).splitlines()[0]) from err
    out.positions = rec.positions[[rec.ch_names.index(c) for c in out.ch_names]]
    return out


def _relative_annotations(raw: mne.io.BaseRaw) -> mne.Annotations:
    """The file's annotations with onsets in seconds from its first sample (no orig_time)."""
    ann = raw.annotations
    offset = raw.first_time if ann.orig_time is not None else 0.0
    return mne.Annotations(np.asarray(ann.onset) - offset, ann.duration, ann.description)
