"""The unlabelled pretraining corpus and the held-out recordings, one ``WindowDataset`` per montage.

Which recordings pretraining may see (``exclude_test=True``, ``in_corpus``). The evaluation's folds test on
every labelled window once (leave-one-run-out, leave-one-subject-out, time blocks), so "exclude the test set"
means whole recordings:

| dataset | in the corpus | never in the corpus |
|---|---|---|
| eegmmidb | runs 5-7, 9-11, 13, 14 (other motor tasks) | runs 1, 2 (eyes-open-closed), 4, 8, 12 (eegmmidb-mi), 3 |
| eegmat | subjects 00-09, rest and task runs (their labels unused) | subjects 10-35 |
| muse_p300 | subject 1 | subjects 2-5 |
| eeg_eye_state, eeglab_sample, yasa | everything readable | - |

So some test subjects were seen *unlabelled* in pretraining (EEGMMIDB S001's other runs, EEGMAT 00-09, Muse
subject 1); ``seen_unlabelled(task, subjects)`` names them and the evaluation records it next to each task,
so a reader can compare folds whose subject was seen with folds whose subject was not.

``VALIDATION``: whole recordings never trained on, on which pretraining measures its validation loss and picks
the step it releases (early stopping). Held-out recordings (``heldout_files``): every recording of the datasets
with a "never in the corpus" entry above that pretraining neither trains on nor shares a recording session with a
validation recording (the step was chosen on that session); masked reconstruction is evaluated on them
(``samba.evaluation.reconstruction``). Choosing the step on them would bias the reported reconstruction error.
They were two recordings (EEGMAT Subject18_1, a Muse recording of subject 2's second session; 10 windows of 30 s)
until the released run's two disagreed; the mirror holds 26 of three devices (100 windows), those two among them.

A recording whose channels have no known position (an EEGLAB file without channel locations) cannot be
placed by CDSE: it is skipped with a warning and counted in the log, never given made-up positions.
Windows: ``window_s`` (default 4 s) every ``stride_s`` (default: no overlap); ``y`` = -1.
``profile="quick"``: at most 2 recordings per dataset (the first in registry order).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

from . import recordings, registry
from .preprocess import Preprocessing
from .windows import WindowDataset, concat, gather, sliding_starts

log = logging.getLogger(__name__)

CORPUS_DATASETS = ("eegmmidb", "eegmat", "eeg_eye_state", "muse_p300", "eeglab_sample", "yasa")

HELDOUT_DATASETS = ("eegmmidb", "eegmat", "muse_p300")  # the datasets whose corpus leaves recordings out
VALIDATION = (  # (dataset, registry path): model selection during pretraining; never trained on, not held out
    ("eegmat", "Subject17_1.edf"),
    ("muse_p300", "subject2/session1/data_2017-02-09-18.12.53.csv"),
)
_EEGMMIDB_TASK_RUNS = (1, 2, 3, 4, 8, 12)  # task runs and the held-out run 3
_EEGMAT_CORPUS_SUBJECTS = tuple(range(10))
_MUSE_CORPUS_SUBJECTS = (1,)
_DATASET_OF_TASK = {"eegmmidb-mi": "eegmmidb", "eyes-open-closed": "eegmmidb", "eegmat-workload": "eegmat",
                    "muse-p300": "muse_p300"}


def in_corpus(dataset: str, fid) -> bool:
    """Whether pretraining may use this recording (the table in the module docstring)."""
    if (dataset, fid.path) in VALIDATION:
        return False
    if dataset == "eegmmidb":
        return fid.run not in _EEGMMIDB_TASK_RUNS
    if dataset == "eegmat":
        return fid.subject in _EEGMAT_CORPUS_SUBJECTS
    if dataset == "muse_p300":
        return fid.subject in _MUSE_CORPUS_SUBJECTS
    return True


def seen_unlabelled(task: str, subjects) -> set[int]:
    """The subjects among ``subjects`` of whom some recording of ``task``'s dataset is in the corpus."""
    dataset = _DATASET_OF_TASK[task]
    return {int(fid.subject) for _, fid in recordings.recording_files(dataset)
            if fid.subject in set(subjects) and in_corpus(dataset, fid)}


def readable_paths(dataset: str, mirror, params: Preprocessing, cache_dir=None) -> set[str]:
    """Registry paths of ``dataset`` that can be read here: in the mirror, or already in the preprocessing cache."""
    present = {e.path for e in registry.available(dataset, mirror)}
    return present | {f.path for f, _ in recordings.recording_files(dataset)
                      if recordings.is_cached(f, params, cache_dir)}


def heldout_files(mirror=None, sfreq: float = 128.0, cache_dir=None) -> list[tuple[str, str]]:
    """``[(dataset, registry path)]`` of every held-out recording readable here (mirror or cache), registry order:
    the recordings of ``HELDOUT_DATASETS`` that are not in the corpus and not of a validation recording's session."""
    params = Preprocessing(sfreq=float(sfreq))
    out, absent = [], 0
    for name in HELDOUT_DATASETS:
        present = readable_paths(name, mirror, params, cache_dir)
        files = recordings.recording_files(name)
        validated = {(fid.subject, fid.session) for f, fid in files if (name, f.path) in VALIDATION}
        for f, fid in files:
            if in_corpus(name, fid) or (fid.subject, fid.session) in validated:
                continue
            if f.path in present:
                out.append((name, f.path))
            else:
                absent += 1
    if absent:
        log.info("held-out recordings: %d of %d not available offline, skipped", absent, absent + len(out))
    return out


def corpus_files(mirror=None, sfreq: float = 128.0, cache_dir=None,
                 datasets=CORPUS_DATASETS) -> list[tuple[str, str]]:
    """``[(dataset, registry path)]`` of every recording pretraining trains on that is readable here (mirror or
    cache), registry order: what `pretraining_corpus` reads (``exclude_test=True``) before it windows them."""
    params = Preprocessing(sfreq=float(sfreq))
    out = []
    for name in datasets:
        present = readable_paths(name, mirror, params, cache_dir)
        out += [(name, f.path) for f, fid in recordings.recording_files(name) if in_corpus(name, fid)
                and f.path in present]
    return out


def corpus_recordings(mirror=None, sfreq: float = 128.0, cache_dir=None) -> list[tuple[str, object]]:
    """``[(relpath, Recording)]`` of every corpus recording that can be read and placed here (``corpus_files``):
    the recordings pretraining trained on, to score what a checkpoint learned of them against what it learned of
    recordings it never saw."""
    return named_recordings(corpus_files(mirror, sfreq, cache_dir), mirror, sfreq, cache_dir)


def subject_in_corpus(dataset: str, path: str) -> bool:
    """Whether another recording of this recording's subject is in the corpus (EEGMMIDB S001's run 6, say)."""
    files = recordings.recording_files(dataset)
    subject = next(fid.subject for f, fid in files if f.path == path)
    return any(fid.subject == subject and in_corpus(dataset, fid) for _, fid in files)


def heldout_recordings(mirror=None, sfreq: float = 128.0, cache_dir=None) -> list[tuple[str, object]]:
    """``[(relpath, Recording)]`` of every held-out recording that can be read here (``heldout_files``)."""
    return named_recordings(heldout_files(mirror, sfreq, cache_dir), mirror, sfreq, cache_dir)


def validation_recordings(mirror=None, sfreq: float = 128.0, cache_dir=None) -> list[tuple[str, object]]:
    """``[(relpath, Recording)]`` of the ``VALIDATION`` recordings that can be read here (absent ones: logged)."""
    return named_recordings(VALIDATION, mirror, sfreq, cache_dir)


def named_recordings(pairs, mirror=None, sfreq: float = 128.0, cache_dir=None) -> list[tuple[str, object]]:
    """``[(relpath, Recording)]`` of the ``(dataset, registry path)`` pairs that can be read and placed here."""
    params = Preprocessing(sfreq=float(sfreq))
    out = []
    for dataset, path in pairs:
        match = [f for f, _ in recordings.recording_files(dataset) if f.path == path]
        try:
            rec = recordings.load_recording(match[0], mirror, params, cache_dir)
        except (IndexError, ValueError, registry.DataNotAvailableError) as err:
            log.warning("recording %s/%s not available: %s", dataset, path, err)
            continue
        if rec.positions is not None:
            out.append((f"{dataset}/{path}", rec))
    return out


def pretraining_corpus(
    mirror: str | os.PathLike | None = None, window_s: float = 4.0, exclude_test: bool = True,
    profile: str = "full", stride_s: float | None = None, sfreq: float = 128.0,
    cache_dir: str | os.PathLike | None = None, datasets=CORPUS_DATASETS,
) -> list[WindowDataset]:
    """One ``WindowDataset`` per montage pooling all readable recordings (largest first)."""
    params = Preprocessing(sfreq=float(sfreq))
    win = int(round(window_s * params.sfreq))
    stride = int(round((stride_s or window_s) * params.sfreq))
    if win < 8:
        raise ValueError(f"window of {win} samples is shorter than 8")
    groups: dict[tuple[str, ...], list[WindowDataset]] = {}
    skipped: list[str] = []
    for name in datasets:
        present = readable_paths(name, mirror, params, cache_dir)
        files = [(f, fid) for f, fid in recordings.recording_files(name) if f.path in present
                 and (not exclude_test or in_corpus(name, fid))]
        n_absent = len([f for f, _ in recordings.recording_files(name) if f.path not in present])
        if n_absent:
            log.info("pretraining corpus: %s: %d recording(s) not available offline, skipped", name, n_absent)
        if profile == "quick":
            files = files[:2]
        for f, fid in files:
            try:
                rec = recordings.load_recording(f, mirror, params, cache_dir)
            except (ValueError, registry.DataNotAvailableError) as err:
                skipped.append(f"{f.relpath}: {err}")
                continue
            if rec.positions is None:
                skipped.append(f"{f.relpath}: no channel positions ({rec.report.get('positions_error')})")
                continue
            pos = rec.positions
            starts = sliding_starts(rec.data.shape[1], win, stride)
            meta = pd.DataFrame({
                "dataset": name, "subject": fid.subject, "session": fid.session, "run": fid.run,
                "file": f.relpath, "onset_s": starts / rec.sfreq, "window_s": win / rec.sfreq, "label": "",
            })
            if len(starts) == 0:
                continue
            ds = WindowDataset(gather(rec, starts, win), np.full(len(starts), -1), list(rec.ch_names), pos,
                               rec.sfreq, meta, [], "pretraining", registry.dataset_info(name)["device"])
            groups.setdefault(tuple(rec.ch_names), []).append(ds)
    if skipped:
        log.warning("pretraining corpus: skipped %d recording(s): %s", len(skipped), "; ".join(skipped))
    out = [concat(parts) for parts in groups.values()]
    for ds in out:
        ds.device = "+".join(sorted(set(ds.meta.dataset))) if ds.meta.dataset.nunique() > 1 else ds.device
    out.sort(key=lambda d: -len(d) * d.n_channels)
    if not out:
        raise registry.DataNotAvailableError("pretraining corpus: no recording available; set SAMBA_DATA_MIRROR")
    log.info("pretraining corpus: %s", ", ".join(f"{d.device} {tuple(d.X.shape)}" for d in out))
    return out
