"""The four downstream tasks: windows + labels (``load_task``), splits (``split_task``), fixed test sets.

| task | dataset | windows | classes | split |
|---|---|---|---|---|
| eegmmidb-mi | EEGMMIDB S001 runs 4, 8, 12 | 0-4 s after each T1/T2 onset (512 samples) | left, right fist (imagined) | test = run 12; val = seed-chosen class-stratified 20 % of the run-4/8 trials; train = the rest. By subject instead when >= 3 subjects are loaded |
| eyes-open-closed | UCI Eye State (one recording) | 2 s every 0.5 s; windows that contain an eye-state change are dropped | open, closed | 10 equal contiguous time blocks; test = blocks 3 and 7 (fixed); val = 2 seed-chosen blocks holding both classes; a window overlapping a block boundary belongs to no split (the gap) |
| eegmat-workload | EEGMAT subjects 00-35 | 4 s every 2 s, whole recordings | rest (_1), arithmetic (_2) | by subject; test = subjects 15-35 (15-19 mirrored; 20-35 reserved); val = seed-chosen 20 % of the others |
| muse-p300 | Muse P300 subjects 1-5 | -0.1..+0.9 s around each stimulus (128 samples, a multiple of 8) | non-target, target | by subject; test = subject 2; val = seed-chosen 20 % of the other subjects, or, with one other subject, one of its sessions. With a single subject: by session (last = test) |

``profile="quick"`` (CPU notebooks and tests) loads: eegmmidb-mi and eyes-open-closed in full (they are small);
eegmat-workload subjects 0-5 and 15-16; muse-p300 the first 2 files of subject 1 sessions 1 and 2 and of subject 2
session 1. Files in the registry but absent from the mirror/cache (and not downloadable) are skipped with one
logged, counted warning; no file at all is an error.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from . import recordings, registry
from .preprocess import Preprocessing
from .readers import _montage
from .windows import WindowDataset, concat, event_starts, gather, sample_labels, sliding_starts
from samba.errors import SambaError

log = logging.getLogger(__name__)


class EmptySplitError(SambaError, ValueError):
    """A split would be empty (too few subjects / sessions / windows)."""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    dataset: str
    device: str
    class_names: tuple[str, ...]
    window_s: float
    stride_s: float | None = None  # sliding windows; None = event-locked
    tmin_s: float = 0.0  # event-locked window start relative to the event
    test_subjects: tuple[int, ...] = ()
    test_runs: tuple[int, ...] = ()
    n_time_blocks: int = 0
    test_blocks: tuple[int, ...] = ()
    quick: tuple[str, ...] = field(default=(), repr=False)  # registry paths for profile="quick" (empty: all)
    description: str = ""


_MUSE_QUICK = (
    "subject1/session1/data_2017-02-04-15_45_13.csv", "subject1/session1/data_2017-02-04-15_47_49.csv",
    "subject1/session2/data_2017-02-09-17.13.56.csv", "subject1/session2/data_2017-02-09-17.17.46.csv",
    "subject2/session1/data_2017-02-09-18.12.53.csv", "subject2/session1/data_2017-02-09-18.17.25.csv",
)

TASKS: dict[str, TaskSpec] = {
    "eegmmidb-mi": TaskSpec(
        "eegmmidb-mi", "eegmmidb", "eegmmidb", ("left", "right"), window_s=4.0, tmin_s=0.0,
        test_runs=(12,), description="imagined left (T1) vs right (T2) fist, EEGMMIDB runs 4/8/12",
    ),
    "eyes-open-closed": TaskSpec(
        "eyes-open-closed", "eeg_eye_state", "emotiv_epoc", ("open", "closed"), window_s=2.0, stride_s=0.5,
        n_time_blocks=10, test_blocks=(3, 7), description="eyes open vs closed, UCI EEG Eye State (Emotiv EPOC)",
    ),
    "eegmat-workload": TaskSpec(
        "eegmat-workload", "eegmat", "10-20", ("rest", "arithmetic"), window_s=4.0, stride_s=2.0,
        test_subjects=tuple(range(15, 36)),
        quick=tuple(f"Subject{s:02d}_{k}.edf" for s in (0, 1, 2, 3, 4, 5, 15, 16) for k in (1, 2)),
        description="rest vs serial subtraction, EEGMAT, cross-subject",
    ),
    "muse-p300": TaskSpec(
        "muse-p300", "muse_p300", "muse", ("nontarget", "target"), window_s=1.0, tmin_s=-0.1,
        test_subjects=(2,), quick=_MUSE_QUICK, description="target vs non-target visual P300, Muse 2016",
    ),
}

_MI_RUNS = (4, 8, 12)  # imagined left/right fist


def test_subjects(task: str) -> tuple[int, ...]:
    """The fixed test subjects of ``task`` (never used for training, validation or pretraining).

    eegmmidb-mi and eyes-open-closed hold out a run / time blocks instead (``TASKS[task].test_runs`` /
    ``.test_blocks``); for them this is empty.
    """
    return _spec(task).test_subjects


def _spec(task: str) -> TaskSpec:
    if task not in TASKS:
        raise KeyError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    return TASKS[task]


def _parse_subjects(subjects) -> set[int] | None:
    if subjects is None:
        return None
    def number(token) -> int:  # 7, "7", "S007", "Subject07"
        digits = re.sub(r"\D", "", str(token))
        if not digits:
            raise ValueError(f"cannot read a subject number from {token!r}")
        return int(digits)

    if isinstance(subjects, str):  # "20-35" or "1,3"
        out = set()
        for part in subjects.split(","):
            part = part.strip()
            if "-" in part:
                a, b = part.split("-")
                out.update(range(number(a), number(b) + 1))
            elif part:
                out.add(number(part))
        return out
    if isinstance(subjects, (int, np.integer)):
        return {int(subjects)}
    return {number(s) for s in subjects}


def _select_files(spec: TaskSpec, mirror, subjects: set[int] | None, profile: str,
                  params: Preprocessing = Preprocessing(), cache_dir=None, use_cache: bool = True):
    chosen = []
    for f, fid in recordings.recording_files(spec.dataset):
        if spec.name == "eegmmidb-mi" and fid.run not in _MI_RUNS:
            continue
        if subjects is not None and fid.subject not in subjects:
            continue
        if profile == "quick" and spec.quick and f.path not in spec.quick:
            continue
        chosen.append((f, fid))
    if profile not in ("quick", "full"):
        raise ValueError(f"profile must be 'quick' or 'full', got {profile!r}")
    present = {e.path for e in registry.available(spec.dataset, mirror)}
    if use_cache:  # a preprocessed cache entry stands in for the raw file
        present |= {f.path for f, _ in chosen if recordings.is_cached(f, params, cache_dir)}
    missing = [f for f, _ in chosen if f.path not in present]
    here = [(f, fid) for f, fid in chosen if f.path in present]
    if missing:
        # try to download them (fetch raises DataNotAvailableError when offline)
        still = []
        for f in missing:
            try:
                registry.fetch(f.dataset, f.path, mirror=mirror)
                here.append((f, recordings.parse_id(f)))
            except registry.DataNotAvailableError:
                still.append(f)
        if still:
            log.warning(
                "%s: %d of %d registry file(s) not available offline, skipped (e.g. %s; download from %s)",
                spec.name, len(still), len(chosen), still[0].relpath, still[0].url,
            )
    if not here:
        if subjects is not None:
            raise registry.DataNotAvailableError(
                f"{spec.name}: no file available for subjects {sorted(subjects)}; set SAMBA_DATA_MIRROR or go online"
            )
        raise registry.DataNotAvailableError(f"{spec.name}: no file of dataset {spec.dataset} available offline")
    return sorted(here, key=lambda t: t[0].path)


def load_task(
    task: str, mirror: str | os.PathLike | None = None, subjects=None, sfreq: float = 128.0,
    cache_dir: str | os.PathLike | None = None, profile: str = "full",
    preprocessing: Preprocessing | None = None, use_cache: bool = True,
    window_s: float | None = None, stride_s: float | None = None, tmin_s: float | None = None,
) -> WindowDataset:
    """All windows of ``task`` (see the module table) from the mirror / cache / public source.

    ``window_s`` / ``stride_s`` (sliding-window tasks) / ``tmin_s`` (event-locked tasks) override the task's
    defaults; the fixed test set does not change.
    """
    spec = _spec(task)
    if stride_s is not None and spec.stride_s is None:
        raise ValueError(f"{task} is event-locked: it takes window_s / tmin_s, not stride_s")
    if tmin_s is not None and spec.stride_s is not None:
        raise ValueError(f"{task} uses sliding windows: it takes window_s / stride_s, not tmin_s")
    spec = replace(spec, **{k: v for k, v in dict(window_s=window_s, stride_s=stride_s, tmin_s=tmin_s).items() if v is not None})
    params = preprocessing or Preprocessing(sfreq=float(sfreq))
    if params.sfreq != float(sfreq) and preprocessing is not None and sfreq != 128.0:
        raise ValueError("pass sfreq through preprocessing= or sfreq=, not both")
    files = _select_files(spec, mirror, _parse_subjects(subjects), profile, params, cache_dir, use_cache)
    win = int(round(spec.window_s * params.sfreq))
    if win < 8:
        raise ValueError(f"{task}: window of {win} samples at {params.sfreq:g} Hz is shorter than 8 samples")
    parts = []
    for f, fid in files:
        rec = recordings.load_recording(f, mirror, params, cache_dir, use_cache)
        part = _windows_of(spec, rec, fid, win)
        if part is not None and len(part):
            parts.append(part)
    if not parts:
        raise EmptySplitError(f"{task}: no window could be cut from {len(files)} file(s)")
    parts = _common_channels(parts, task)
    ds = concat(parts)
    log.info("%s: %d windows %s from %d file(s)", task, len(ds), ds.class_counts(), len(files))
    return ds


def _common_channels(parts: list[WindowDataset], task: str) -> list[WindowDataset]:
    """Keep the channels every file has (a file may have dropped a flat/NaN channel); logged when it bites."""
    common = [c for c in parts[0].ch_names if all(c in p.ch_names for p in parts)]
    if any(p.ch_names != common for p in parts):
        dropped = sorted({c for p in parts for c in p.ch_names} - set(common))
        log.warning("%s: channel(s) %s missing in some file(s): dropped from all", task, dropped)
        if not common:
            raise ValueError(f"{task}: the files share no channel")
        out = []
        for p in parts:
            idx = [p.ch_names.index(c) for c in common]
            out.append(WindowDataset(p.X[:, idx], p.y, common, p.positions[idx], p.sfreq, p.meta,
                                     p.class_names, p.task, p.device))
        return out
    return parts


def _windows_of(spec: TaskSpec, rec, fid: recordings.FileId, win: int) -> WindowDataset | None:
    ev = rec.events
    if spec.name == "eegmmidb-mi":
        sel = ev[ev.description.isin(["T1", "T2"])]
        starts, kept = event_starts(rec, sel.onset_s.to_numpy(), spec.tmin_s, win)
        y = (sel.description.to_numpy()[kept] == "T2").astype(np.int64)  # T1 left = 0, T2 right = 1
        _log_dropped(spec, fid, kept)
    elif spec.name == "muse-p300":
        sel = ev[ev.description.isin(["nontarget", "target"])]
        starts, kept = event_starts(rec, sel.onset_s.to_numpy(), spec.tmin_s, win)
        y = (sel.description.to_numpy()[kept] == "target").astype(np.int64)
        _log_dropped(spec, fid, kept)
    elif spec.name == "eegmat-workload":
        starts = sliding_starts(rec.data.shape[1], win, int(round(spec.stride_s * rec.sfreq)))
        y = np.full(len(starts), 0 if fid.run == 1 else 1, dtype=np.int64)
    elif spec.name == "eyes-open-closed":
        lab = sample_labels(rec, {"eyes_open": 0, "eyes_closed": 1})
        starts = sliding_starts(rec.data.shape[1], win, int(round(spec.stride_s * rec.sfreq)))
        seg = np.stack([lab[s : s + win] for s in starts]) if len(starts) else np.zeros((0, win), int)
        pure = (seg.min(1) == seg.max(1)) & (seg[:, 0] >= 0)
        if (~pure).any():
            log.info("%s: dropped %d of %d windows that straddle an eye-state change", spec.name, int((~pure).sum()), len(starts))
        starts, y = starts[pure], seg[pure, 0].astype(np.int64)
    else:  # pragma: no cover
        raise KeyError(spec.name)
    if len(starts) == 0:
        return None
    meta = pd.DataFrame({
        "dataset": fid.dataset, "subject": fid.subject, "session": fid.session, "run": fid.run,
        "file": f"{fid.dataset}/{fid.path}", "onset_s": starts / rec.sfreq,
        "window_s": win / rec.sfreq, "label": [spec.class_names[k] for k in y],
    })
    pos = rec.positions if rec.positions is not None else _montage().positions(rec.ch_names)
    return WindowDataset(gather(rec, starts, win), y, list(rec.ch_names), pos,
                         rec.sfreq, meta, list(spec.class_names), spec.name, spec.device)


def _log_dropped(spec, fid, kept):
    if (~kept).any():
        log.warning("%s: %s: %d event window(s) run past the recording edge, dropped", spec.name, fid.path, int((~kept).sum()))


# ------------------------------------------------------------------------------------------------
# splits
# ------------------------------------------------------------------------------------------------
def time_blocks(meta: pd.DataFrame, n_blocks: int, duration_s: float | None = None) -> np.ndarray:
    """Block index of each window (-1 when the window overlaps a block boundary)."""
    end = meta.onset_s + meta.window_s
    total = float(duration_s if duration_s is not None else end.max())
    edges = np.linspace(0.0, total, n_blocks + 1)
    first = np.searchsorted(edges, meta.onset_s.to_numpy(), side="right") - 1
    last = np.searchsorted(edges, end.to_numpy() - 1e-9, side="right") - 1
    return np.where(first == last, first, -1)


_EYE_STATE_DURATION_S = 14980 / 128.0  # the recording's length fixes the block edges


def test_mask(task: str, meta: pd.DataFrame) -> np.ndarray:
    """True for windows that touch ``task``'s fixed test data (what pretraining excludes).

    For time-block tasks this includes windows that only overlap a test block; ``split_task``'s test split
    holds the windows entirely inside the test blocks, and its train/val never touch them.
    """
    spec = _spec(task)
    mask = np.zeros(len(meta), dtype=bool)
    if spec.test_subjects:
        mask |= meta.subject.isin(spec.test_subjects).to_numpy()
    if spec.test_runs:
        mask |= meta.run.isin(spec.test_runs).to_numpy()
    if spec.n_time_blocks:
        edges = np.linspace(0.0, _EYE_STATE_DURATION_S, spec.n_time_blocks + 1)
        start, stop = meta.onset_s.to_numpy(), (meta.onset_s + meta.window_s).to_numpy()
        for b in spec.test_blocks:
            mask |= (start < edges[b + 1]) & (stop > edges[b])
    return mask


def split_task(ds: WindowDataset, seed: int = 0, test_size: float | None = None, val_size: float = 0.2) -> dict[str, np.ndarray]:
    """``{"train", "val", "test"}`` index arrays (rules in the module table). Deterministic given ``seed``.

    ``test_size=None`` uses the task's fixed test set; a fraction instead draws test *subjects* with the seed
    (only for tasks with several subjects; the fixed test subjects are then not respected).
    Raises ``EmptySplitError`` rather than return an empty split.
    """
    if ds.task in TASKS:
        spec = TASKS[ds.task]
    else:  # external datasets (samba.data.external): by subject, no fixed test list -> seed-drawn
        spec = TaskSpec(ds.task, "", ds.device, tuple(ds.class_names), window_s=ds.n_times / ds.sfreq)
        test_size = 0.2 if test_size is None else test_size
    meta = ds.meta
    rng = np.random.default_rng(seed)
    subjects = np.array(sorted(meta.subject.unique()))
    assign = np.full(len(ds), "", dtype=object)

    if spec.n_time_blocks:  # one continuous recording: contiguous blocks with a gap
        blocks = time_blocks(meta, spec.n_time_blocks, _EYE_STATE_DURATION_S)
        test = list(spec.test_blocks)
        rest = [b for b in range(spec.n_time_blocks) if b not in test]
        n_val = max(1, int(round(val_size * spec.n_time_blocks)))
        for _ in range(100):  # val must hold both classes: redraw (deterministically) until it does
            val = sorted(rng.choice(rest, size=n_val, replace=False).tolist())
            if len(np.unique(ds.y[np.isin(blocks, val)])) == len(ds.class_names):
                break
        assign[np.isin(blocks, test)] = "test"
        assign[np.isin(blocks, val)] = "val"
        assign[np.isin(blocks, [b for b in rest if b not in val])] = "train"
    elif len(subjects) >= 2 and (test_size is not None or np.isin(subjects, spec.test_subjects).any() or len(subjects) >= 3):
        if test_size is not None:
            n_test = max(1, int(round(test_size * len(subjects))))
            test_subj = rng.choice(subjects, size=n_test, replace=False)
        else:
            test_subj = subjects[np.isin(subjects, spec.test_subjects)]
            if len(test_subj) == 0:  # none of the fixed test subjects loaded -> the last 20 % of subjects
                test_subj = subjects[-max(1, int(round(0.2 * len(subjects)))):]
                log.warning("%s: no fixed test subject %s loaded; testing on subjects %s instead",
                            ds.task, list(spec.test_subjects), test_subj.tolist())
        others = np.array([s for s in subjects if s not in set(test_subj)])
        if len(others) == 0:
            raise EmptySplitError(f"{ds.task}: every loaded subject is a test subject {sorted(test_subj)}; load training subjects too")
        assign[meta.subject.isin(test_subj).to_numpy()] = "test"
        if len(others) >= 2:
            n_val = min(len(others) - 1, max(1, int(round(val_size * len(others)))))
            val_subj = rng.choice(others, size=n_val, replace=False)
            assign[meta.subject.isin(val_subj).to_numpy()] = "val"
            assign[(assign == "")] = "train"
        else:
            _split_within(meta, assign, rng, val_size, ds.y, only=(meta.subject == others[0]).to_numpy(), spec=spec)
    else:  # a single subject
        only = np.ones(len(ds), dtype=bool)
        if spec.test_runs:
            assign[meta.run.isin(spec.test_runs).to_numpy()] = "test"
            only = assign == ""
        else:
            sessions = sorted(meta.session.unique())
            if len(sessions) < 2:
                raise EmptySplitError(f"{ds.task}: one subject with one session: nothing to hold out")
            assign[(meta.session == sessions[-1]).to_numpy()] = "test"
            only = assign == ""
        _split_within(meta, assign, rng, val_size, ds.y, only=only, spec=spec)

    out = {k: np.flatnonzero(assign == k) for k in ("train", "val", "test")}
    for k, idx in out.items():
        if len(idx) == 0:
            raise EmptySplitError(f"{ds.task}: the {k} split is empty (subjects {subjects.tolist()}); load more data")
    return out


def _split_within(meta, assign, rng, val_size, y, only, spec):
    """Validation inside the training subject: a session if it has >= 2, else class-stratified trials."""
    sessions = sorted(meta.session[only].unique())
    if len(sessions) >= 2 and spec.name != "eegmmidb-mi":
        val_sess = rng.choice(sessions)
        assign[only & (meta.session == val_sess).to_numpy()] = "val"
    else:  # trials of event-locked tasks do not overlap in time, so a trial-level split does not leak
        for k in np.unique(y[only]):
            idx = np.flatnonzero(only & (y == k))
            n_val = max(1, int(round(val_size * len(idx))))
            assign[rng.choice(idx, size=n_val, replace=False)] = "val"
    assign[only & (assign == "")] = "train"


# `test_subjects` / `test_mask` are API names, not tests: keep pytest from collecting them when a test
# module imports them by name.
test_subjects.__test__ = False
test_mask.__test__ = False
