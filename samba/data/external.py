"""The paper's other datasets, loaded from where the user keeps them (none is mirrored here).

| dataset | loader | how to obtain (also in registry.toml [external.*]) |
|---|---|---|
| TUAB (TUH Abnormal) | ``load_tuab(root)`` | NEDC registration, rsync; ``root`` holds ``train/`` and ``eval/`` (``edf/`` above them is fine) |
| BNCI2014_001 (BCI IV 2a), PhysionetMI, GrosseWentrup2009, BNCI2014_009 (P300) | ``load_moabb(name)`` | ``pip install moabb``; MOABB downloads on first use |
| STEW | ``load_stew(root)`` | IEEE DataPort zip, extracted: ``subXX_lo.txt`` (rest) / ``subXX_hi.txt`` (SIMKAP workload) |
| DREAMER | ``load_dreamer(path)`` | ``DREAMER.mat`` from Zenodo (on request) |

All return a ``WindowDataset`` through the same preprocessing as the mirrored tasks (``Preprocessing``),
with ``meta.subject`` set, so ``split_task``'s by-subject rule applies. MOABB and braindecode are imported
lazily: this module imports without them. The command line reaches these loaders through
``samba.data.sources.load_any_task`` (``--task tuab:PATH``, ``moabb:NAME``, ``stew:PATH``, ``dreamer:PATH``);
where to obtain each dataset and its licence: docs/your_own_data.md.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import mne
import numpy as np
import pandas as pd

from .preprocess import Preprocessing, Recording, preprocess
from .readers import EYE_STATE_CHANNELS, _montage, _rename_canonical
from .windows import WindowDataset, concat, event_starts, gather, sliding_starts

log = logging.getLogger(__name__)


def _windows(rec: Recording, starts, y, win, meta: dict, class_names, task, device) -> WindowDataset:
    m = pd.DataFrame({**meta, "onset_s": np.asarray(starts) / rec.sfreq, "window_s": win / rec.sfreq,
                      "label": [class_names[k] if k >= 0 else "" for k in y]})
    pos = rec.positions if rec.positions is not None else _montage().positions(rec.ch_names)
    return WindowDataset(gather(rec, np.asarray(starts), win), np.asarray(y), list(rec.ch_names), pos, rec.sfreq,
                         m, list(class_names), task, device)


def _common(parts: list[WindowDataset], what: str) -> WindowDataset:
    if not parts:
        raise ValueError(f"{what}: no window could be cut")
    common = [c for c in parts[0].ch_names if all(c in p.ch_names for p in parts)]
    out = []
    for p in parts:
        idx = [p.ch_names.index(c) for c in common]
        out.append(WindowDataset(p.X[:, idx], p.y, common, p.positions[idx], p.sfreq, p.meta, p.class_names,
                                 p.task, p.device))
    return concat(out)


# ------------------------------------------------------------------------------------------------
# TUAB
# ------------------------------------------------------------------------------------------------
TUH_BIPOLAR = ("FP1-F7", "F7-T3", "T3-T5", "T5-O1", "FP2-F8", "F8-T4", "T4-T6", "T6-O2",
               "FP1-F3", "F3-C3", "C3-P3", "P3-O1", "FP2-F4", "F4-C4", "C4-P4", "P4-O2")  # fmt: skip


def tuh_bipolar(raw: mne.io.BaseRaw) -> mne.io.BaseRaw:
    """TCP bipolar derivations ("FP1-F7" ...) from TUH referential channels ("EEG FP1-REF" / "EEG FP1-LE")."""
    by_site = {}
    for name in raw.ch_names:
        m = re.fullmatch(r"(?:EEG\s+)?([A-Z0-9]+)-(?:REF|LE|AR)", name.strip(), flags=re.IGNORECASE)
        if m:
            by_site[m[1].upper()] = name
    missing = sorted({s for pair in TUH_BIPOLAR for s in pair.split("-")} - set(by_site))
    if missing:
        raise ValueError(f"TUH recording lacks electrode(s) {missing} for the bipolar montage")
    anode = [by_site[p.split("-")[0]] for p in TUH_BIPOLAR]
    cathode = [by_site[p.split("-")[1]] for p in TUH_BIPOLAR]
    bip = mne.set_bipolar_reference(raw, anode, cathode, ch_name=list(TUH_BIPOLAR), drop_refs=False,
                                    copy=True, verbose="ERROR")
    bip.pick(list(TUH_BIPOLAR))
    bip.set_channel_types({n: "eeg" for n in TUH_BIPOLAR})
    return bip


def load_tuab(root: str | os.PathLike, split: str | None = None, window_s: float = 10.0, max_windows_per_file: int | None = 30,
              params: Preprocessing = Preprocessing(), pattern: str = "*.edf", max_files: int | None = None) -> WindowDataset:
    """TUAB v3: ``<root>/{train,eval}/{normal,abnormal}/01_tcp_ar/*.edf`` -> 10 s windows, TCP bipolar montage.

    Label from the folder (normal = 0, abnormal = 1); subject from the file name (``aaaaaaaq_s004_t000``).
    ``split`` = "train" / "eval" restricts to TUAB's own split (its eval subjects are disjoint from train).
    """
    root = Path(root)
    if (root / "edf").is_dir():
        root = root / "edf"
    files = sorted(p for p in root.rglob(pattern) if split is None or split in p.relative_to(root).parts[:1])
    if max_files:
        files = files[:max_files]
    if not files:
        raise FileNotFoundError(f"no TUAB recordings ({pattern}) under {root}; see registry [external.tuab] 'obtain'")
    win = int(round(window_s * params.sfreq))
    parts = []
    for path in files:
        parts_of = path.relative_to(root).parts
        label = 1 if "abnormal" in parts_of else 0
        raw = mne.io.read_raw(path, preload=True, verbose="ERROR")
        rec = preprocess(tuh_bipolar(raw), params, source=str(path))
        rec.positions = _montage().positions(rec.ch_names)  # midpoints of the two electrodes
        starts = sliding_starts(rec.data.shape[1], win, win)[:max_windows_per_file]
        if len(starts) == 0:
            continue
        subject = path.stem.split("_")[0]
        parts.append(_windows(rec, starts, np.full(len(starts), label), win,
                              {"dataset": "tuab", "subject": subject, "session": path.stem.split("_")[1] if "_" in path.stem else 1,
                               "run": 1, "file": str(path), "split": parts_of[0]},
                              ("normal", "abnormal"), "tuab-abnormal", "tuh_bipolar"))
    return _common(parts, "TUAB")


# ------------------------------------------------------------------------------------------------
# MOABB
# ------------------------------------------------------------------------------------------------
def load_moabb(name: str, subjects=None, classes: tuple[str, ...] | None = None, params: Preprocessing = Preprocessing(),
               max_window_s: float | None = None) -> WindowDataset:
    """A MOABB dataset (``"BNCI2014_001"``, ``"PhysionetMI"``, ``"GrosseWentrup2009"``, ``"BNCI2014_009"``...).

    Each run goes through ``preprocess``; windows span the dataset's own trial interval
    (``dataset.interval``, e.g. 2-6 s after the cue for BCI IV 2a), trimmed to a multiple of 8 samples.
    ``classes``: event names to keep (default: all of ``dataset.event_id``), labelled in that order.
    """
    try:
        import moabb.datasets as moabb_datasets
    except ImportError as err:
        raise ImportError(f"load_moabb({name!r}) needs MOABB: pip install moabb ({err})") from err
    if not hasattr(moabb_datasets, name):
        raise KeyError(f"MOABB has no dataset {name!r}")
    dataset = getattr(moabb_datasets, name)()
    event_id = dict(dataset.event_id)
    classes = tuple(classes or event_id)
    unknown = [c for c in classes if c not in event_id]
    if unknown:
        raise KeyError(f"{name}: unknown class(es) {unknown}; the dataset has {list(event_id)}")
    tmin, tmax = (float(v) for v in dataset.interval)
    if max_window_s:
        tmax = min(tmax, tmin + max_window_s)
    win = int((tmax - tmin) * params.sfreq) // 8 * 8
    code_to_label = {event_id[c]: k for k, c in enumerate(classes)}
    subjects = list(subjects) if subjects is not None else list(dataset.subject_list)
    parts = []
    for subject, sessions in dataset.get_data(subjects).items():
        for s_idx, (session, runs) in enumerate(sessions.items()):
            for r_idx, (run, raw) in enumerate(runs.items()):
                if any(t == "stim" for t in raw.get_channel_types()):
                    events = mne.find_events(raw, shortest_event=0, verbose="ERROR")
                else:
                    events, _ = mne.events_from_annotations(raw, event_id=event_id, verbose="ERROR")
                keep = np.isin(events[:, 2], list(code_to_label))
                events = events[keep]
                eeg = raw.copy().pick("eeg")
                eeg = _rename_canonical(eeg, on_unknown="drop")
                rec = preprocess(eeg, params, source=f"{name} subject {subject} {session} {run}")
                onsets = (events[:, 0] - raw.first_samp) / raw.info["sfreq"]
                starts, kept = event_starts(rec, onsets, tmin, win)
                y = np.array([code_to_label[c] for c in events[kept, 2]], dtype=np.int64)
                if len(starts) == 0:
                    continue
                parts.append(_windows(rec, starts, y, win,
                                      {"dataset": name, "subject": int(subject), "session": s_idx + 1, "run": r_idx + 1,
                                       "file": f"{name}/{subject}/{session}/{run}"},
                                      classes, name, name.lower()))
    return _common(parts, name)


# ------------------------------------------------------------------------------------------------
# STEW
# ------------------------------------------------------------------------------------------------
def load_stew(root: str | os.PathLike, window_s: float = 4.0, stride_s: float = 2.0,
              params: Preprocessing = Preprocessing()) -> WindowDataset:
    """STEW: ``subXX_lo.txt`` (rest, 0) and ``subXX_hi.txt`` (SIMKAP multitasking, 1); 14 Emotiv columns, 128 Hz, uV."""
    root = Path(root)
    files = sorted(root.rglob("sub*_lo.txt")) + sorted(root.rglob("sub*_hi.txt"))
    if not files:
        raise FileNotFoundError(f"no STEW files (subXX_lo.txt / subXX_hi.txt) under {root}")
    win, stride = int(round(window_s * params.sfreq)), int(round(stride_s * params.sfreq))
    parts = []
    for path in files:
        m = re.fullmatch(r"sub(\d+)_(lo|hi)", path.stem)
        if not m:
            continue
        data = np.loadtxt(path, ndmin=2)
        if data.shape[1] != 14:
            raise ValueError(f"{path}: expected 14 Emotiv columns, found {data.shape[1]}")
        raw = mne.io.RawArray(data.T * 1e-6, mne.create_info(list(EYE_STATE_CHANNELS), 128.0, "eeg"), verbose="ERROR")
        rec = preprocess(raw, params, source=str(path))
        starts = sliding_starts(rec.data.shape[1], win, stride)
        label = 0 if m[2] == "lo" else 1
        parts.append(_windows(rec, starts, np.full(len(starts), label), win,
                              {"dataset": "stew", "subject": int(m[1]), "session": 1, "run": 1 + label, "file": str(path)},
                              ("rest", "workload"), "stew-workload", "emotiv_epoc"))
    return _common(parts, "STEW")


# ------------------------------------------------------------------------------------------------
# DREAMER
# ------------------------------------------------------------------------------------------------
def load_dreamer(path: str | os.PathLike, target: str = "valence", threshold: float = 3.0, window_s: float = 4.0,
                 stride_s: float = 4.0, params: Preprocessing = Preprocessing()) -> WindowDataset:
    """DREAMER.mat: 23 subjects x 18 film clips, Emotiv 14 ch at 128 Hz; label = score (1-5) > ``threshold``.

    ``target``: "valence", "arousal" or "dominance". Windows are cut from each clip's stimulus recording.
    """
    from scipy.io import loadmat

    mat = loadmat(path, squeeze_me=True, struct_as_record=False)
    if "DREAMER" not in mat:
        raise ValueError(f"{path}: no 'DREAMER' struct; is this DREAMER.mat?")
    key = {"valence": "ScoreValence", "arousal": "ScoreArousal", "dominance": "ScoreDominance"}[target]
    win, stride = int(round(window_s * params.sfreq)), int(round(stride_s * params.sfreq))
    parts = []
    for s_idx, subj in enumerate(np.atleast_1d(mat["DREAMER"].Data)):
        scores = np.atleast_1d(getattr(subj, key))
        for t_idx, clip in enumerate(np.atleast_1d(subj.EEG.stimuli)):
            data = np.asarray(clip, dtype=np.float64)
            raw = mne.io.RawArray(data.T * 1e-6, mne.create_info(list(EYE_STATE_CHANNELS), 128.0, "eeg"), verbose="ERROR")
            rec = preprocess(raw, params, source=f"DREAMER subject {s_idx + 1} clip {t_idx + 1}")
            starts = sliding_starts(rec.data.shape[1], win, stride)
            label = int(scores[t_idx] > threshold)
            parts.append(_windows(rec, starts, np.full(len(starts), label), win,
                                  {"dataset": "dreamer", "subject": s_idx + 1, "session": 1, "run": t_idx + 1,
                                   "file": f"{path}#{s_idx + 1}/{t_idx + 1}"},
                                  (f"low_{target}", f"high_{target}"), f"dreamer-{target}", "emotiv_epoc"))
    return _common(parts, "DREAMER")
