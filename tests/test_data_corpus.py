"""The pretraining corpus: one dataset per montage, unlabeled, without any task's test data."""

from __future__ import annotations

import logging

import numpy as np

from samba.data import pretraining_corpus
from samba.data.corpus import (VALIDATION, corpus_files, corpus_recordings, heldout_files, heldout_recordings,
                                in_corpus, seen_unlabelled, validation_recordings)
from samba.data.recordings import recording_files


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
    # whole recordings: no run of a task, no held-out recording, EEGMAT 00-09 and Muse subject 1 only
    assert not set(by_dataset["eegmmidb"].run) & {1, 2, 3, 4, 8, 12} and set(by_dataset["eegmmidb"].run)
    assert set(by_dataset["eegmat"].subject) == set(range(10))
    assert set(by_dataset["muse_p300"].subject) == {1}
    files = {f"{d}/{p}" for d, p in heldout_files(mirror, cache_dir=data_cache) + list(VALIDATION)}
    assert not files & {f for ds in corpus for f in ds.meta.file}
    assert seen_unlabelled("eegmat-workload", range(20)) == set(range(10))
    assert seen_unlabelled("muse-p300", [1, 2]) == {1} and seen_unlabelled("eegmmidb-mi", [1]) == {1}


def test_corpus_with_test_data_and_quick(mirror, data_cache):
    full = pretraining_corpus(mirror=mirror, window_s=2.0, exclude_test=False, cache_dir=data_cache, datasets=("eegmat",))
    assert len(full) == 1 and set(full[0].meta.subject) == set(range(20)) and full[0].X.shape[2] == 256
    quick = pretraining_corpus(mirror=mirror, profile="quick", cache_dir=data_cache, datasets=("eegmat", "muse_p300"))
    assert all(ds.meta.file.nunique() <= 2 for ds in quick)


def test_heldout_files_are_every_recording_neither_trained_nor_validated(mirror, data_cache):
    files = heldout_files(mirror, cache_dir=data_cache)
    assert len(set(files)) == len(files)
    ids = {(d, f.path): fid for d in ("eegmmidb", "eegmat", "muse_p300") for f, fid in recording_files(d)}
    for d, path in files:
        assert not in_corpus(d, ids[(d, path)])
    # no recording of a session the released step was chosen on (validation), nor a validation recording
    assert not {(d, ids[(d, p)].subject, ids[(d, p)].session) for d, p in files} & {
        (d, ids[(d, p)].subject, ids[(d, p)].session) for d, p in VALIDATION}
    # the mirror: EEGMMIDB S001's task runs, EEGMAT subjects 10-19 but for subject 17, Muse subject 2 session 2;
    # the two first held-out recordings are among them
    by = {d: [p for dd, p in files if dd == d] for d in ("eegmmidb", "eegmat", "muse_p300")}
    assert by["eegmmidb"] == [f"S001/S001R{r:02d}.edf" for r in (1, 2, 4, 8, 12)]
    assert by["eegmat"] == [f"Subject{s}_{k}.edf" for s in (10, 11, 12, 13, 14, 15, 16, 18, 19) for k in (1, 2)]
    assert len(by["muse_p300"]) == 3 and all(p.startswith("subject2/session2/") for p in by["muse_p300"])
    assert {("eegmat", "Subject18_1.edf"), ("muse_p300", "subject2/session2/data_2018-05-04-01.50.45.csv")} <= set(files)


def test_heldout_recordings_read_with_positions(mirror, data_cache):
    recs = heldout_recordings(mirror, cache_dir=data_cache)
    assert [name for name, _ in recs] == [f"{d}/{p}" for d, p in heldout_files(mirror, cache_dir=data_cache)]
    assert all(rec.positions is not None and rec.data.shape[1] > 4 * 128 for _, rec in recs)


def test_validation_recordings_are_neither_trained_on_nor_reported(mirror, data_cache):
    recs = validation_recordings(mirror, cache_dir=data_cache)
    names = {name for name, _ in recs}
    assert names == {f"{d}/{p}" for d, p in VALIDATION}  # both are mirrored
    assert not names & {f"{d}/{p}" for d, p in heldout_files(mirror, cache_dir=data_cache)}
    assert all(rec.positions is not None and rec.data.shape[1] > 30 * 128 for _, rec in recs)


def test_corpus_files_are_what_pretraining_trains_on(mirror, data_cache):
    files = {f"{d}/{p}" for d, p in corpus_files(mirror, cache_dir=data_cache)}
    read = {f for ds in pretraining_corpus(mirror=mirror, window_s=4.0, cache_dir=data_cache) for f in ds.meta.file}
    assert read == files - {"eeglab_sample/test_raw.set"}  # the one without channel positions is skipped by both
    placed = corpus_recordings(mirror, cache_dir=data_cache)
    assert {name for name, _ in placed} == read and all(rec.positions is not None for _, rec in placed)
    assert not files & {f"{d}/{p}" for d, p in heldout_files(mirror, cache_dir=data_cache) + list(VALIDATION)}
