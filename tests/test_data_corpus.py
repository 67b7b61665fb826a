"""The pretraining corpus: one dataset per montage, unlabeled, without any task's test data."""

from __future__ import annotations

import logging

import numpy as np

from samba.data import TASKS, pretraining_corpus
from samba.data import test_mask


def test_corpus_excludes_every_test_set(mirror, data_cache, caplog):
    with caplog.at_level(logging.WARNING):
        corpus = pretraining_corpus(mirror=mirror, window_s=4.0, cache_dir=data_cache)
    assert "eeglab_sample/test_raw.set: no channel positions" in caplog.text  # skipped, counted, not guessed
    by_dataset = {}
    for ds in corpus:
        assert np.all(ds.y == -1) and ds.X.shape[2] == 512 and ds.positions.shape == (ds.X.shape[1], 3)
        assert ds.meta.groupby("file").size().min() > 0
        for name, group in ds.meta.groupby("dataset"):
            by_dataset[name] = group
    assert set(by_dataset) == {"eegmmidb", "eegmat", "eeg_eye_state", "muse_p300", "yasa"}
    assert len({tuple(ds.ch_names) for ds in corpus}) == len(corpus)  # one per montage
    for task, spec in TASKS.items():
        meta = by_dataset[spec.dataset]
        assert not test_mask(task, meta).any(), task
    assert 12 not in set(by_dataset["eegmmidb"].run)
    assert set(by_dataset["eegmat"].subject) == set(range(15))
    assert set(by_dataset["muse_p300"].subject) == {1}


def test_corpus_with_test_data_and_quick(mirror, data_cache):
    full = pretraining_corpus(mirror=mirror, window_s=2.0, exclude_test=False, cache_dir=data_cache, datasets=("eegmat",))
    assert len(full) == 1 and set(full[0].meta.subject) == set(range(20)) and full[0].X.shape[2] == 256
    quick = pretraining_corpus(mirror=mirror, profile="quick", cache_dir=data_cache, datasets=("eegmat", "muse_p300"))
    assert all(ds.meta.file.nunique() <= 2 for ds in quick)
