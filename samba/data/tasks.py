"""The four downstream tasks: windows + labels (``load_task``), one quick split (``split_task``), test rules.

| task | dataset | windows | classes | evaluation folds (``samba.evaluation.protocol``) | ``split_task`` (one run) |
|---|---|---|---|---|---|
| eegmmidb-mi | EEGMMIDB runs 4, 8, 12 (every registry subject) | 0-4 s after each T1/T2 onset (512 samples) | left, right fist (imagined) | leave-one-run-out: 3 folds, test = run 4, 8 or 12 of every subject | test = run 12 |
| eyes-open-closed | EEGMMIDB baseline runs R01 (open) and R02 (closed) | 2 s every 1 s | open, closed | >= 3 subjects: grouped by subject (5 folds); fewer (the mirror holds S001): each run cut into 6 equal time blocks, test = block k of both runs, training windows within 2 s of a test block dropped (the gap) | test = block 5 of each run, same gap |
| eegmat-workload | EEGMAT subjects 00-35 | 4 s every 2 s, whole recordings, normalised per subject | rest (_1), arithmetic (_2) | leave-one-subject-out over subjects 00-19 (the public mirror), plus the fixed held-out fold: train on 00-19, test on any of 20-35 present | test = 20-35 when present, else 15-19 |
| muse-p300 | Muse P300 subjects 1-5 | -0.1..+0.9 s around each stimulus (128 samples, a multiple of 8) | non-target, target | within-subject, per recording: each recording cut into 5 time blocks, test = block k of every recording, 1 s gap | test = block 4 of every recording, same gap |

Per-subject normalisation (eegmat-workload): preprocessing scales each recording by its own per-channel IQR, which
makes the rest and arithmetic recordings of a subject equally loud and removes most of the workload effect (band
power AUROC 0.68 on the raw scale, 0.46 after per-recording scaling); the task puts each recording back on its
original scale and divides by the subject's per-channel IQR (median over the subject's recordings) instead.

The UCI EEG Eye State recording stays in the registry (and in the pretraining corpus): its labels carry no alpha
effect that any method separates honestly, so it is a cautionary example, no longer a task.

``profile="quick"`` (CPU notebooks and tests) loads: eegmmidb-mi and eyes-open-closed in full (they are small);
eegmat-workload subjects 0-5 and 15-16; muse-p300 the first 2 files of subject 1's first two recording sessions and of
subject 2's first. ``subjects=`` always bypasses the profile: subjects not in the mirror are read through the registry
(download or mirror). Files in the registry but absent from the mirror/cache (and not downloadable) are skipped with
one logged, counted warning; no file at all is an error.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..errors import InputError, SambaError, UsageError
from . import recordings, registry
from .preprocess import Preprocessing
from .readers import _montage
from .windows import WindowDataset, concat, event_starts, gather, sliding_starts

log = logging.getLogger(__name__)


class EmptySplitError(InputError):
    """A split would be empty (too few subjects / sessions / windows)."""


class UnknownTaskError(UsageError, KeyError):
    """No task of that name (a KeyError for old callers, one clear line for the CLI)."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


class SubjectsNotAvailableError(registry.DataNotAvailableError, SambaError):
    """The requested subjects do not exist in the registry, or none of their files can be read."""


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
    runs: tuple[int, ...] = ()  # recordings of these runs only (EEGMMIDB); empty: all
    heldout_subjects: tuple[int, ...] = ()  # fixed held-out test subjects (never trained or pretrained on)
    n_time_blocks: int = 0  # > 0: within-recording temporal blocks
    test_blocks: tuple[int, ...] = ()  # split_task's test block(s)
    gap_s: float = 0.0  # training windows closer than this to a test block are dropped
    label_by_run: dict | None = field(default=None, repr=False, hash=False, compare=False)  # run -> class
    normalise: str = "recording"  # or "subject" (see the module docstring)
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
        runs=(4, 8, 12), test_runs=(12,), description="imagined left (T1) vs right (T2) fist, EEGMMIDB runs 4/8/12",
    ),
    "eyes-open-closed": TaskSpec(
        "eyes-open-closed", "eegmmidb", "eegmmidb", ("open", "closed"), window_s=2.0, stride_s=1.0,
        runs=(1, 2), label_by_run={1: 0, 2: 1}, n_time_blocks=6, test_blocks=(5,), gap_s=2.0,
        description="eyes open (R01) vs eyes closed (R02), EEGMMIDB baseline runs",
    ),
    "eegmat-workload": TaskSpec(
        "eegmat-workload", "eegmat", "10-20", ("rest", "arithmetic"), window_s=4.0, stride_s=2.0,
        heldout_subjects=tuple(range(20, 36)), normalise="subject",
        quick=tuple(f"Subject{s:02d}_{k}.edf" for s in (0, 1, 2, 3, 4, 5, 15, 16) for k in (1, 2)),
        description="rest vs serial subtraction, EEGMAT, leave-one-subject-out",
    ),
    "muse-p300": TaskSpec(
        "muse-p300", "muse_p300", "muse", ("nontarget", "target"), window_s=1.0, tmin_s=-0.1,
        n_time_blocks=5, test_blocks=(4,), gap_s=1.0, quick=_MUSE_QUICK,
        description="target vs non-target visual P300, Muse 2016, within-subject",
    ),
}

_EEGMAT_SINGLE_SPLIT_TEST = tuple(range(15, 20))  # split_task's test subjects when none of 20-35 is loaded


def test_subjects(task: str) -> tuple[int, ...]:
    """The fixed held-out test subjects of ``task`` (never used for training, validation or pretraining).

    Only eegmat-workload has them (20-35, the subjects the public mirror does not hold); the other tasks hold
    out runs or time blocks inside every subject (see the module table), so for them this is empty.
    """
    spec = _spec(task)
    return spec.heldout_subjects or spec.test_subjects


def _spec(task: str) -> TaskSpec:
    if task not in TASKS:
        raise UnknownTaskError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    return TASKS[task]


def _parse_subjects(subjects) -> set[int] | None:
    if subjects is None:
        return None
    def number(token) -> int:  # 7, "7", "S007", "Subject07"
        digits = re.sub(r"\D", "", str(token))
        if not digits:
            raise UsageError(f"cannot read a subject number from {token!r}; write e.g. 20-35 or 1,3")
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
        if spec.runs and fid.run not in spec.runs:
            continue
        if subjects is not None and fid.subject not in subjects:
            continue
        # named subjects bypass the quick profile: they are read through the registry (mirror or download)
        if subjects is None and profile == "quick" and spec.quick and f.path not in spec.quick:
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
    if subjects is not None:
        known = {fid.subject for _, fid in recordings.recording_files(spec.dataset)}
        unknown = sorted(subjects - known)
        if unknown:
            raise SubjectsNotAvailableError(
                f"{spec.name}: subject(s) {unknown} do not exist in {spec.dataset} "
                f"(the registry has subjects {min(known)}-{max(known)})")
    if not here:
        if subjects is not None:
            raise SubjectsNotAvailableError(
                f"{spec.name}: no file available for subjects {sorted(subjects)}; pass --mirror DIR "
                "(or set SAMBA_DATA_MIRROR) or allow downloads"
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
    recs = [(recordings.load_recording(f, mirror, params, cache_dir, use_cache), f, fid) for f, fid in files]
    if spec.normalise == "subject":
        recs = _normalise_per_subject(recs, mirror, params, cache_dir)
    parts = []
    for rec, f, fid in recs:
        part = _windows_of(spec, rec, fid, win)
        if part is not None and len(part):
            parts.append(part)
    if not parts:
        raise EmptySplitError(f"{task}: no window could be cut from {len(files)} file(s)")
    parts = _common_channels(parts, task)
    ds = concat(parts)
    log.info("%s: %d windows %s from %d file(s)", task, len(ds), ds.class_counts(), len(files))
    return ds


def _normalise_per_subject(recs, mirror, params, cache_dir):
    """Undo preprocessing's per-recording IQR scaling and divide by the subject's IQR instead (see the docstring).

    ``Recording.report["channel_iqr"]`` holds the per-channel IQR preprocessing divided by; a cache entry written
    before it was recorded is rebuilt from the raw file (so never silently left per-recording).
    """
    fixed = []
    for rec, f, fid in recs:
        if "channel_iqr" not in rec.report:
            log.info("%s: cache entry has no channel_iqr; rereading the raw file", f.relpath)
            rec = recordings.load_recording(f, mirror, params, cache_dir, use_cache=False)
        fixed.append((rec, f, fid))
    by_subject: dict[int, list] = {}
    for rec, _, fid in fixed:
        by_subject.setdefault(fid.subject, []).append(dict(zip(rec.ch_names, rec.report["channel_iqr"])))
    out = []
    for rec, f, fid in fixed:
        own = np.asarray(rec.report["channel_iqr"], np.float64)  # (C,) what preprocessing divided by
        subject = np.array([np.median([d[c] for d in by_subject[fid.subject] if c in d]) for c in rec.ch_names])
        gain = (own / np.maximum(subject, 1e-12)).astype(np.float32)[:, None]  # (C, 1)
        data = np.clip(np.asarray(rec.data) * gain, -params.clip, params.clip)  # same bound as preprocessing
        out.append((replace(rec, data=data), f, fid))
    return out


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
    elif spec.name == "eyes-open-closed":  # the whole run has one label (R01 open, R02 closed)
        starts = sliding_starts(rec.data.shape[1], win, int(round(spec.stride_s * rec.sfreq)))
        y = np.full(len(starts), spec.label_by_run[fid.run], dtype=np.int64)
    else:  # pragma: no cover
        raise KeyError(spec.name)
    if len(starts) == 0:
        return None
    meta = pd.DataFrame({
        "dataset": fid.dataset, "subject": fid.subject, "session": fid.session, "run": fid.run,
        "file": f"{fid.dataset}/{fid.path}", "onset_s": starts / rec.sfreq,
        "window_s": win / rec.sfreq, "label": [spec.class_names[k] for k in y],
        "rec_duration_s": rec.data.shape[1] / rec.sfreq,
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
    """Block index of each window within its recording (-1 when the window overlaps a block boundary).

    A recording of length L is cut into ``n_blocks`` equal blocks; L is ``duration_s``, else the window's
    ``rec_duration_s`` column, else the end of the recording's last window.
    """
    start = meta.onset_s.to_numpy(float)
    end = start + meta.window_s.to_numpy(float)
    total = _durations(meta) if duration_s is None else np.full(len(meta), float(duration_s))
    width = total / n_blocks
    first = np.floor(start / width).astype(int)
    last = np.floor((end - 1e-9) / width).astype(int)
    return np.where(first == last, np.minimum(first, n_blocks - 1), -1)


def _durations(meta: pd.DataFrame) -> np.ndarray:
    if "rec_duration_s" in meta:
        return meta.rec_duration_s.to_numpy(float)
    end = meta.onset_s + meta.window_s
    return end.groupby(meta.file).transform("max").to_numpy(float)


def temporal_split(meta: pd.DataFrame, n_blocks: int, test_blocks, gap_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) boolean masks of a within-recording temporal split with a gap.

    test = windows entirely inside one of ``test_blocks`` of their recording; train = windows that end at least
    ``gap_s`` before a test block starts or start ``gap_s`` after it ends, in every recording. Windows in
    between belong to neither (the gap keeps overlapping or adjacent, autocorrelated samples apart).
    """
    start = meta.onset_s.to_numpy(float)
    end = start + meta.window_s.to_numpy(float)
    width = _durations(meta) / n_blocks
    blocks = time_blocks(meta, n_blocks)
    test = np.isin(blocks, list(test_blocks))
    train = np.ones(len(meta), dtype=bool)
    for b in test_blocks:
        lo, hi = b * width, (b + 1) * width
        train &= (end <= lo - gap_s) | (start >= hi + gap_s)
    return train & ~test, test


def test_mask(task: str, meta: pd.DataFrame) -> np.ndarray:
    """True for windows that touch the test data of ``split_task`` (the one-run split; the evaluation's folds
    test on everything once: see ``samba.evaluation.protocol`` and the corpus rules in ``samba.data.corpus``).

    For time-block tasks this includes windows that only overlap a test block; ``split_task``'s test split
    holds the windows entirely inside the test blocks, and its train/val never touch them.
    """
    spec = _spec(task)
    mask = np.zeros(len(meta), dtype=bool)
    if spec.name == "eegmat-workload":
        mask |= meta.subject.isin(_single_split_test_subjects(spec, meta)).to_numpy()
    if spec.test_runs:
        mask |= meta.run.isin(spec.test_runs).to_numpy()
    if spec.n_time_blocks:
        width = _durations(meta) / spec.n_time_blocks
        start, stop = meta.onset_s.to_numpy(float), (meta.onset_s + meta.window_s).to_numpy(float)
        for b in spec.test_blocks:
            mask |= (start < (b + 1) * width) & (stop > b * width)
    return mask


def _single_split_test_subjects(spec: TaskSpec, meta: pd.DataFrame) -> list[int]:
    subjects = sorted(meta.subject.unique())
    held = [s for s in subjects if s in spec.heldout_subjects]
    if held:
        return held
    fixed = [s for s in subjects if s in _EEGMAT_SINGLE_SPLIT_TEST]
    return fixed or subjects[-max(1, int(round(0.2 * len(subjects)))):]


def split_task(ds: WindowDataset, seed: int = 0, test_size: float | None = None, val_size: float = 0.2) -> dict[str, np.ndarray]:
    """``{"train", "val", "test"}`` index arrays of one run (rules in the module table). Deterministic given ``seed``.

    The test set does not depend on the seed. ``val`` is for monitoring only (training runs a fixed number of
    epochs). ``test_size`` (a fraction) draws test *subjects* with the seed instead (datasets from
    ``samba.data.external``, which have no fixed rule, use 0.2). Raises ``EmptySplitError`` rather than return an
    empty split.
    """
    meta = ds.meta
    rng = np.random.default_rng(seed)
    subjects = np.array(sorted(meta.subject.unique()))
    assign = np.full(len(ds), "", dtype=object)
    spec = TASKS.get(ds.task)
    if spec is None or test_size is not None:  # by subject, seed-drawn
        test_size = 0.2 if test_size is None else test_size
        if len(subjects) < 2:
            raise EmptySplitError(f"{ds.task}: one subject: nothing to hold out by subject")
        n_test = min(len(subjects) - 1, max(1, int(round(test_size * len(subjects)))))
        test_subj = rng.choice(subjects, size=n_test, replace=False)
        _by_subject(meta, assign, test_subj, rng, val_size, ds)
    elif spec.n_time_blocks:  # within-recording time blocks with a gap
        train, test = temporal_split(meta, spec.n_time_blocks, spec.test_blocks, spec.gap_s)
        assign[test] = "test"
        rest = [b for b in range(spec.n_time_blocks) if b not in spec.test_blocks]
        val_block = int(rng.choice(rest))
        blocks = time_blocks(meta, spec.n_time_blocks)
        assign[train & (blocks == val_block)] = "val"
        assign[train & (assign == "")] = "train"
    elif spec.test_runs:  # eegmmidb-mi: test = run 12; val = class-stratified trials of the other runs
        assign[meta.run.isin(spec.test_runs).to_numpy()] = "test"
        _split_within(meta, assign, rng, val_size, ds.y, only=assign == "", spec=spec)
    else:  # eegmat-workload
        test_subj = _single_split_test_subjects(spec, meta)
        if len(test_subj) == len(subjects):
            raise EmptySplitError(f"{ds.task}: every loaded subject is a test subject {sorted(test_subj)}; load training subjects too")
        _by_subject(meta, assign, test_subj, rng, val_size, ds)

    out = {k: np.flatnonzero(assign == k) for k in ("train", "val", "test")}
    for k, idx in out.items():
        if len(idx) == 0:
            raise EmptySplitError(f"{ds.task}: the {k} split is empty (subjects {subjects.tolist()}); load more data")
    return out


def _by_subject(meta, assign, test_subj, rng, val_size, ds):
    others = np.array([s for s in sorted(meta.subject.unique()) if s not in set(test_subj)])
    if len(others) == 0:
        raise EmptySplitError(f"{ds.task}: every loaded subject is a test subject {sorted(test_subj)}; load training subjects too")
    assign[meta.subject.isin(test_subj).to_numpy()] = "test"
    if len(others) >= 2:
        n_val = min(len(others) - 1, max(1, int(round(val_size * len(others)))))
        val_subj = rng.choice(others, size=n_val, replace=False)
        assign[meta.subject.isin(val_subj).to_numpy()] = "val"
        assign[(assign == "")] = "train"
    else:
        _split_within(meta, assign, rng, val_size, ds.y, only=(meta.subject == others[0]).to_numpy(), spec=None)


def _split_within(meta, assign, rng, val_size, y, only, spec):
    """Validation inside the training data: class-stratified trials (event-locked trials do not overlap)."""
    for k in np.unique(y[only]):
        idx = np.flatnonzero(only & (y == k))
        n_val = max(1, int(round(val_size * len(idx))))
        assign[rng.choice(idx, size=n_val, replace=False)] = "val"
    assign[only & (assign == "")] = "train"


# `test_subjects` / `test_mask` are API names, not tests: keep pytest from collecting them when a test
# module imports them by name.
test_subjects.__test__ = False
test_mask.__test__ = False
