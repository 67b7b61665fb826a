"""Your own labelled recordings -> a ``WindowDataset`` (what ``load_task`` returns) and an honest split.

    >>> from samba.data.user_tasks import load_user_task, split_user
    >>> ds = load_user_task("S001R04.edf", labels="left=T1,right=T2", window_s=4)
    >>> split = split_user(ds); split.rule
    'by time: 5 contiguous blocks of 24.8 s; test block(s) [3] ...'

``data``: one recording (any format of ``samba.data.user``), a folder of recordings, or a BIDS folder
(``dataset_description.json`` at its top; read with mne-bids, labels from each ``*_events.tsv``).

``labels`` (the SPEC of ``--labels``):
- ``"left=T1,right=T2"``: class ``left`` = annotations/events described ``T1`` ...; ``rest=T0|BAD`` joins several;
- ``"T1,T2"``: the descriptions are the class names;
- ``"events.csv"``: a CSV with columns ``onset,duration,label`` (seconds from the recording's first sample; an
  optional ``file`` column names the recording a row belongs to when ``data`` is a folder); every label is a class;
- None for a BIDS folder: every ``trial_type`` is a class.

Windows: an event shorter than ``window_s`` gives one window starting ``tmin_s`` after its onset (event-locked,
e.g. a stimulus); a longer one is tiled with windows every ``stride_s`` (default: ``window_s``, no overlap) inside
it (e.g. a 60-s block of rest).

Subject / session / run come from BIDS entities, else from the file name (``sub-01``, ``S001R04``,
``Subject07_2``; ``ses-`` / ``run-`` likewise), else 1. :func:`split_user` then holds out, in this order of
preference: whole subjects (>= 2 subjects), whole sessions (>= 2), whole runs (>= 3), or contiguous time blocks
with a gap (one recording); ``Split.rule`` says which.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError, UsageError
from .preprocess import Preprocessing
from .registry import file_sha256
from .user import FORMATS, open_recording, preprocess_recording
from .windows import WindowDataset, concat, gather

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------
# labels
# ------------------------------------------------------------------------------------------------
def parse_labels(spec: str) -> dict[str, list[str]]:
    """``"left=T1,right=T2|T3"`` -> ``{"left": ["T1"], "right": ["T2", "T3"]}``; ``"T1,T2"`` -> identity."""
    out: dict[str, list[str]] = {}
    for part in str(spec).split(","):
        part = part.strip()
        if not part:
            continue
        name, _, codes = part.partition("=")
        name = name.strip()
        codes = [c.strip() for c in (codes or name).split("|") if c.strip()]
        if not name or not codes:
            raise UsageError(f"cannot read the label mapping {spec!r}; write it as class=EVENT,class=EVENT (e.g. left=T1,right=T2)")
        out.setdefault(name, []).extend(codes)
    if len(out) < 2:
        raise UsageError(f"the label mapping {spec!r} names {len(out)} class(es); a classifier needs >= 2")
    return out


def read_events_csv(path: Path) -> pd.DataFrame:
    """``onset,duration,label[,file]`` rows (seconds) -> DataFrame, or one-line ``InputError``."""
    try:
        df = pd.read_csv(path)
    except Exception as err:
        raise InputError(f"{path}: cannot parse the events CSV ({type(err).__name__}: {err})") from err
    df.columns = [str(c).strip().lower() for c in df.columns]
    missing = [c for c in ("onset", "duration", "label") if c not in df.columns]
    if missing:
        raise InputError(f"{path}: events CSV lacks column(s) {missing}; expected a header onset,duration,label")
    df["label"] = df["label"].astype(str).str.strip()
    return df


# ------------------------------------------------------------------------------------------------
# file -> subject / session / run
# ------------------------------------------------------------------------------------------------
_ENTITY = {
    "subject": (r"sub-([A-Za-z0-9]+)", r"(?:^|[^A-Za-z])S(\d{2,4})(?=R\d|[^A-Za-z0-9]|$)", r"[Ss]ubject[_-]?(\d+)"),
    "session": (r"ses-([A-Za-z0-9]+)", r"[Ss]ession[_-]?(\d+)"),
    "run": (r"run-([A-Za-z0-9]+)", r"S\d{2,4}R(\d+)", r"[Rr]un[_-]?(\d+)"),
}


def _value(text: str):
    return int(text) if str(text).isdigit() else str(text)


def file_ids(path: Path) -> dict:
    """``{"subject", "session", "run"}`` from the path's BIDS entities or common file-name patterns (else 1)."""
    text = "/".join(path.parts[-3:])
    out = {}
    for key, patterns in _ENTITY.items():
        out[key] = 1
        for pattern in patterns:
            m = re.search(pattern, text)
            if m:
                out[key] = _value(m[1])
                break
    return out


# ------------------------------------------------------------------------------------------------
# recordings -> windows
# ------------------------------------------------------------------------------------------------
def _is_bids(root: Path) -> bool:
    return root.is_dir() and (root / "dataset_description.json").is_file()


def _content_sha256(source) -> str:
    """sha256 of a recording's file (a path, or the file an MNE Raw was read from): which recording it is,
    whatever its name or folder (``samba evaluate`` tells recordings a model was fine-tuned on from new ones)."""
    path = Path(source) if isinstance(source, (str, os.PathLike)) else Path(source.filenames[0])
    return file_sha256(path)  # memoised on (path, size, mtime): finetune then evaluate hash a file once


def _recordings(data: Path):
    """Yield ``(source for open_recording, ids, name)`` for a file, a folder of files or a BIDS folder."""
    if _is_bids(data):
        try:
            import mne_bids
        except ImportError as err:
            raise InputError(f"{data} is a BIDS folder; reading it needs mne-bids: pip install mne-bids") from err
        paths = mne_bids.find_matching_paths(data, datatypes="eeg", suffixes="eeg",
                                             extensions=[".edf", ".bdf", ".vhdr", ".set", ".fif"])
        for bp in sorted(paths, key=str):
            raw = mne_bids.read_raw_bids(bp, verbose="ERROR")  # events.tsv -> annotations (trial_type)
            ids = {"subject": _value(bp.subject or 1), "session": _value(bp.session or 1), "run": _value(bp.run or 1)}
            yield raw, ids, str(bp.fpath.relative_to(data))
        return
    if data.is_dir():
        files = sorted(p for p in data.rglob("*") if p.is_file() and any(p.name.lower().endswith(s) for s in FORMATS))
        if not files:
            raise InputError(f"{data}: no recording ({', '.join(FORMATS)}) in this folder")
    elif data.exists():
        files = [data]
    else:
        raise InputError(f"no such recording or folder: {data}")
    for f in files:
        yield f, file_ids(f), f.name


def _events_for(rec, name: str, events_csv: pd.DataFrame | None) -> pd.DataFrame:
    """onset_s, duration_s, description of one recording (its annotations, or the CSV's rows for it)."""
    if events_csv is None:
        return rec.events
    rows = events_csv
    if "file" in rows.columns:
        rows = rows[rows["file"].astype(str).map(lambda f: Path(f).name) == Path(name).name]
    return pd.DataFrame({"onset_s": rows["onset"].astype(float).to_numpy(), "duration_s": rows["duration"].astype(float).to_numpy(),
                         "description": rows["label"].to_numpy()})


def _match(desc: str, mapping: dict) -> str | None:
    """``desc`` itself, or its part after the last "/" (BrainVision writes "Comment/T1", "Stimulus/S  1")."""
    if desc in mapping:
        return desc
    tail = desc.rsplit("/", 1)[-1].strip()
    return tail if "/" in desc and tail in mapping else None


def _window_starts(events: pd.DataFrame, mapping: dict[str, int], sfreq: float, win: int, stride: int,
                   tmin_s: float, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    starts, y = [], []
    for onset, dur, desc in events[["onset_s", "duration_s", "description"]].itertuples(index=False):
        desc = _match(str(desc), mapping)
        if desc is None:
            continue
        a = int(round(onset * sfreq))
        if dur * sfreq >= win:  # a labelled block: tile it
            b = int(round((onset + dur) * sfreq))
            s = np.arange(a, min(b, n_samples) - win + 1, stride)
        else:  # a labelled instant (stimulus, cue): one window locked to it
            s = np.array([a + int(round(tmin_s * sfreq))])
        s = s[(s >= 0) & (s + win <= n_samples)]
        starts.append(s)
        y.append(np.full(len(s), mapping[desc]))
    if not starts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(starts).astype(np.int64), np.concatenate(y).astype(np.int64)


def load_user_task(data, labels=None, window_s: float = 4.0, stride_s: float | None = None, tmin_s: float = 0.0,
                   sfreq: float | None = None, params: Preprocessing = Preprocessing(), subjects=None) -> WindowDataset:
    """Labelled windows of the user's recordings (module docstring), as ``samba.data.load_task`` returns them."""
    from samba.paths import user_path

    data = user_path(data)
    events_csv, mapping = None, None
    if labels is not None and str(labels).lower().endswith((".csv", ".tsv")):
        events_csv = read_events_csv(user_path(labels))
        class_names = sorted(events_csv["label"].unique())
        mapping = {c: [c] for c in class_names}
    elif labels is not None:
        mapping = parse_labels(labels)
    elif not _is_bids(data):
        raise UsageError("--labels is required: a mapping like left=T1,right=T2 or a CSV of onset,duration,label")
    want = None
    if subjects is not None:
        from .tasks import _parse_subjects

        want = _parse_subjects(subjects)
    win = int(round(window_s * params.sfreq))
    stride = int(round((stride_s or window_s) * params.sfreq))
    if win < 8 or stride < 1:
        raise UsageError(f"window_s={window_s:g} s / stride_s={stride_s} are too short at {params.sfreq:g} Hz")
    parts, seen = [], set()
    for source, ids, name in _recordings(data):
        if want is not None and ids["subject"] not in want:
            continue
        rec = preprocess_recording(open_recording(source, sfreq=sfreq), params)
        events = _events_for(rec, name, events_csv)
        if mapping is None:  # BIDS without a mapping: every trial type is a class
            mapping = {c: [c] for c in sorted(set(events.description) - {"n/a", "BAD_ACQ_SKIP"})}
        code = {d: k for k, (_, ds) in enumerate(mapping.items()) for d in ds}
        seen |= set(events.description)
        starts, y = _window_starts(events, code, rec.sfreq, win, stride, tmin_s, rec.data.shape[1])
        if len(starts) == 0:
            continue
        classes = list(mapping)
        meta = pd.DataFrame({"dataset": "user", **ids, "file": name, "file_sha256": _content_sha256(source),
                             "onset_s": starts / rec.sfreq, "window_s": win / rec.sfreq,
                             "label": [classes[k] for k in y]})
        parts.append(WindowDataset(gather(rec, starts, win), y, list(rec.ch_names), rec.positions, rec.sfreq,
                                   meta, classes, "user", "user"))
    if not parts:
        wanted = sorted({d for ds in (mapping or {}).values() for d in ds})
        raise InputError(f"{data}: no labelled window: the labels {wanted} match none of the recording's events "
                         f"{sorted(map(str, seen))[:12]}")
    ds = concat(_common_channels(parts))
    missing = [c for k, c in enumerate(ds.class_names) if not (ds.y == k).any()]
    if missing:
        raise InputError(f"{data}: class(es) {missing} have no window; check --labels against the events {sorted(map(str, seen))[:12]}")
    log.info("user data: %d windows %s from %d recording(s)", len(ds), ds.class_counts(), len(parts))
    return ds


def _common_channels(parts: list[WindowDataset]) -> list[WindowDataset]:
    common = [c for c in parts[0].ch_names if all(c in p.ch_names for p in parts)]
    if not common:
        raise InputError("the recordings share no EEG channel")
    out = []
    for p in parts:
        idx = [p.ch_names.index(c) for c in common]
        out.append(WindowDataset(p.X[:, idx], p.y, common, p.positions[idx], p.sfreq, p.meta, p.class_names, p.task, p.device))
    return out


# ------------------------------------------------------------------------------------------------
# splits
# ------------------------------------------------------------------------------------------------
class Split(dict):
    """``{"train", "val", "test"}`` index arrays, with ``rule``: how they were drawn, in words."""

    rule: str = ""


def split_user(ds: WindowDataset, seed: int = 0, n_blocks: int = 5, gap_s: float | None = None) -> Split:
    """Hold out whole subjects, else sessions, else runs (>= 3), else contiguous time blocks with a gap.

    Time blocks (one recording): the recording's time is cut into ``n_blocks`` (5) equal blocks, a window
    belongs to the block holding its centre; block 3 (0-based; blocks 3 and 7 from 8 blocks on) is the test set
    and a seed-chosen other block the validation set. A window within ``gap_s`` (default: one window length)
    of an edge between blocks of two different splits belongs to no split, so no test window shares signal
    with (or directly follows) a training window.
    """
    from .tasks import EmptySplitError

    rng = np.random.default_rng(seed)
    meta = ds.meta
    assign = np.full(len(ds), "", dtype=object)
    for key, least in (("subject", 2), ("session", 2), ("run", 3)):
        groups = sorted(meta[key].astype(str).unique())
        if len(groups) >= least:
            shuffled = [str(g) for g in rng.permutation(groups)]
            n_test = max(1, int(round(0.2 * len(groups))))
            n_val = max(1, int(round(0.2 * len(groups)))) if len(groups) - n_test >= 2 else 0
            test, val = shuffled[:n_test], shuffled[n_test:n_test + n_val]
            g = meta[key].astype(str)
            assign[g.isin(test).to_numpy()] = "test"
            assign[g.isin(val).to_numpy()] = "val"
            assign[assign == ""] = "train"
            rule = f"by {key}: test {key}(s) {test}, validation {val or 'none (too few; validation = training)'}"
            if not val:
                assign_val = np.flatnonzero(assign == "train")
                out = Split(train=assign_val, val=assign_val, test=np.flatnonzero(assign == "test"))
                out.rule = rule
                return _checked(out, ds, EmptySplitError)
            break
    else:
        gap = float(ds.n_times / ds.sfreq if gap_s is None else gap_s)
        start = meta.onset_s.to_numpy()
        stop = start + meta.window_s.to_numpy()
        edges = np.linspace(start.min(), stop.max(), n_blocks + 1)
        block = np.clip(np.searchsorted(edges, (start + stop) / 2, side="right") - 1, 0, n_blocks - 1)
        test = [n_blocks // 2 + 1] if n_blocks < 8 else [3, 7]
        rest = [b for b in range(n_blocks) if b not in test]
        val = sorted(rng.choice(rest, size=max(1, n_blocks // 5), replace=False).tolist())
        of_block = np.array(["test" if b in test else "val" if b in val else "train" for b in range(n_blocks)], dtype=object)
        assign[:] = of_block[block]
        for k in range(1, n_blocks):  # the gap: no window within gap_s of an edge between two splits
            if of_block[k - 1] != of_block[k]:
                assign[(start - gap < edges[k]) & (stop + gap > edges[k])] = ""
        rule = (f"by time: {n_blocks} contiguous blocks of {(edges[1] - edges[0]):.1f} s; test block(s) {test}, "
                f"validation block(s) {val}; {int((assign == '').sum())} window(s) within {gap:g} s of an edge "
                "between two splits left out (the gap)")
    out = Split({k: np.flatnonzero(assign == k) for k in ("train", "val", "test")})
    out.rule = rule
    return _checked(out, ds, EmptySplitError)


def _checked(split: Split, ds: WindowDataset, error) -> Split:
    for k, idx in split.items():
        if len(idx) == 0:
            raise error(f"user data: the {k} split is empty ({split.rule}); record more, or add subjects/sessions")
    for k in ("train", "test"):
        if len(np.unique(ds.y[split[k]])) < 2:
            log.warning("user data: the %s split holds one class only (%s)", k, split.rule)
    log.info("user data split %s", split.rule)
    return split
