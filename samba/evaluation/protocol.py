"""The folds of each task: which windows train and which test, identical for every method and seed.

| task | folds |
|---|---|
| eegmmidb-mi | leave-one-run-out over runs 4 / 8 / 12 (every subject's run r is the test set of fold r) |
| eyes-open-closed | >= 3 subjects: 5 folds grouped by subject; else 6 time blocks per run, test = block k, 2 s gap |
| eegmat-workload | leave-one-subject-out over the non-held-out subjects; plus a ``heldout`` fold (train on all of those, test on subjects 20-35) when any is loaded |
| muse-p300 | 5 time blocks per recording, test = block k of every recording, 1 s gap (within-subject) |

Training runs a fixed number of epochs, so a fold has no validation set (nothing to stop early on).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from samba.data.tasks import TASKS, temporal_split


@dataclass(frozen=True)
class Fold:
    name: str  # "run4", "subject07", "block2", "heldout"
    train: np.ndarray  # window indices
    test: np.ndarray
    test_subjects: tuple[int, ...]


def task_folds(ds, max_folds: int | None = None) -> list[Fold]:
    """The folds of ``ds.task`` (see the module table); ``max_folds`` keeps the first ones (quick runs)."""
    spec = TASKS[ds.task]
    meta = ds.meta
    subjects = sorted(int(s) for s in meta.subject.unique())
    if ds.task == "eegmmidb-mi":
        folds = [_fold(f"run{r}", meta, ~_is(meta.run, r), _is(meta.run, r)) for r in spec.runs
                 if _is(meta.run, r).any()]
    elif ds.task == "eyes-open-closed" and len(subjects) >= 3:
        groups = np.array_split(np.array(subjects), min(5, len(subjects)))
        folds = [_fold(f"subjects{g[0]}-{g[-1]}", meta, ~meta.subject.isin(g).to_numpy(),
                       meta.subject.isin(g).to_numpy()) for g in groups]
    elif spec.n_time_blocks:
        folds = []
        for b in range(spec.n_time_blocks):
            train, test = temporal_split(meta, spec.n_time_blocks, (b,), spec.gap_s)
            folds.append(_fold(f"block{b}", meta, train, test))
    elif ds.task == "eegmat-workload":
        held = [s for s in subjects if s in spec.heldout_subjects]
        pool = [s for s in subjects if s not in held]
        folds = [_fold(f"subject{s:02d}", meta, meta.subject.isin([t for t in pool if t != s]).to_numpy(),
                       _is(meta.subject, s)) for s in pool]
        if held and pool:
            folds.append(_fold("heldout", meta, meta.subject.isin(pool).to_numpy(), meta.subject.isin(held).to_numpy()))
    else:  # pragma: no cover
        raise KeyError(ds.task)
    folds = [f for f in folds if len(f.train) and len(f.test)]
    if not folds:
        raise ValueError(f"{ds.task}: no fold has both training and test windows; load more data")
    return folds[:max_folds] if max_folds else folds


def _is(col, value) -> np.ndarray:
    return (col == value).to_numpy()


def _fold(name, meta, train, test) -> Fold:
    train, test = np.asarray(train, bool), np.asarray(test, bool)
    assert not (train & test).any()  # a window is never in both
    subj = tuple(sorted(int(s) for s in meta.subject[test].unique()))
    return Fold(name, np.flatnonzero(train), np.flatnonzero(test), subj)


PROTOCOL_OF = {
    "eegmmidb-mi": "leave-one-run-out over runs 4/8/12",
    "eyes-open-closed": "subject folds (>= 3 subjects) or 6 time blocks per run with a 2 s gap",
    "eegmat-workload": "leave-one-subject-out (+ held-out subjects 20-35 when present), per-subject normalisation",
    "muse-p300": "within-subject: 5 time blocks per recording with a 1 s gap",
}
